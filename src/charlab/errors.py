"""The one error type a user sees: a message naming the problem and the fix, no traceback."""


class CharlabError(Exception):
    """A problem with the user's input or files; the CLI prints it on one line and exits non-zero."""

