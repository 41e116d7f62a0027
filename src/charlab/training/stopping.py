"""Why training stopped early on purpose: a signal, or a non-finite loss. Observers call
``TrainView.request_stop(reason)``; the loop finishes its step and returns, and the caller raises
the reason, which the CLI prints as one line with its exit status."""

from __future__ import annotations

from charlab.errors import CharlabError


class TrainingStopped(CharlabError):
    """Training stopped before its last step. ``exit_code`` is the CLI's exit status;
    ``keep_state``: whether the state at the stop is sound enough to be checkpointed."""

    def __init__(self, message: str, exit_code: int, keep_state: bool):
        super().__init__(message)
        self.exit_code = exit_code
        self.keep_state = keep_state

    def with_context(self, extra: str) -> "TrainingStopped":
        """The same stop, its message extended (e.g. with the checkpoint kept)."""
        self.args = (f"{self}; {extra}",)
        return self
