"""The ``segprune`` command: one parser, one module per subcommand.

Each subcommand module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` and imports its heavy dependencies inside ``run``, so ``--help``
works (and is quick) even where optional packages are missing. A
:class:`~segprune.errors.SegpruneError` is a user error: its one-line message is printed
and the exit status is 2, with no traceback. Exit 1 is reserved for a detected
regression (``segprune check``, a failed parity check), 0 for success, and 3 for an
internal error (a bug: the traceback is printed), so a CI never reads a crash as a regression.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from segprune import __version__
from segprune.cli.common import HelpFormatter, check_output_file
from segprune.errors import SegpruneError, strip_ansi

INTERNAL_ERROR = 3
SUBCOMMANDS = ("analyze", "compress", "prune", "train", "eval", "erf", "export", "bench", "check", "data", "demo", "info")


class Parser(argparse.ArgumentParser):
    """Option errors as one line naming the command's --help, like every other user error (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="segprune",
        description="Measure, compress and deploy semantic-segmentation networks.",
        epilog="Run `segprune COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"segprune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"segprune.cli.{name}_cmd")
        sp = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                            formatter_class=HelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:  # also during start-up (imports, parsing), before any command runs
        print("segprune: interrupted; files already written are whole (every write is atomic), and `segprune train "
              "--resume` continues a training run from its last epoch", file=sys.stderr)
        return 130


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.invocation = ["segprune", *map(str, sys.argv[1:] if argv is None else argv)]  # what reruns this command
    try:
        if getattr(args, "report", None) is not None:  # checked before the work, not when the results are ready
            check_output_file(args.report, "--report")
        return int(args.run(args) or 0)
    except SegpruneError as exc:
        print(f"segprune {args.command}: error: {strip_ansi(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # anything else is segprune's bug, not the user's input nor a regression
        traceback.print_exc()
        print(f"segprune {args.command}: internal error ({type(exc).__name__}: {exc}); this is a bug in segprune: "
              "please report it with the traceback above", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
