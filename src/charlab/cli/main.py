"""The ``charlab`` command: subcommands are discovered from ``charlab/commands/``.

Each module there defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``,
so adding a command is adding a file. Errors the user can fix (``CharlabError``, bad flags) print
one line on stderr and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from importlib.metadata import version

from charlab.errors import CharlabError

EXIT_USAGE = 2  # bad input or bad flags, as argparse uses


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem and where to look."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only when it has one worth showing and its help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, "", argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def load_commands(only: str | None = None) -> list:
    """Command modules, sorted by ``ORDER``; ``only`` imports just that one (a faster start)."""
    package = importlib.import_module("charlab.cli.commands")
    names = [m.name for m in pkgutil.iter_modules(package.__path__)]
    if only in names:
        names = [only]
    modules = [importlib.import_module(f"charlab.cli.commands.{name}") for name in names]
    return sorted((m for m in modules if hasattr(m, "NAME")), key=lambda m: getattr(m, "ORDER", 50))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` only that subcommand is loaded (every one for ``--help``)."""
    parser = OneLineParser(
        prog="charlab",
        description="Character-level language models with the inside of training made visible.",
        epilog="Start with `charlab train` (the lecture's MLP with BatchNorm on the embedded names list).")
    parser.add_argument("--version", action="version", version=f"charlab {version('charlab')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in load_commands(command):
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                                    formatter_class=HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except CharlabError as err:
        print(f"charlab {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"charlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
