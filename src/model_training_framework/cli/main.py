"""``mtf``: the command line. One module per command registers its parser here.

Errors users can fix are printed as one line (no traceback) with a non-zero exit code;
``MTF_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import MTFError
from . import demo

__all__ = ["EXIT_ERROR", "EXIT_PREEMPTED", "main"]

EXIT_ERROR = 2
EXIT_PREEMPTED = 3  # the run checkpointed after a preemption signal and should be requeued

COMMANDS = [demo]


def build_parser() -> argparse.ArgumentParser:
    """The ``mtf`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mtf",
        description="Fault-tolerant multi-dataloader training, sweeps and SLURM launching.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtf``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("mtf: interrupted", file=sys.stderr)
        return 130
    except (MTFError, ValueError, TypeError, OSError, ImportError, RuntimeError) as err:
        if os.environ.get("MTF_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"mtf: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
