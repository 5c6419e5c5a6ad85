"""``mtf``: the command line. One module per command registers its parser here.

Each command module has ``add_parser(subparsers)``, which adds the subcommand with its help and
sets ``handler(args) -> exit code``. Command modules import torch and the trainer inside their
handlers, so ``mtf --help`` stays fast.

Exit codes (:mod:`model_training_framework.experiment.exit_codes`): 0 success, 1 some experiments
of a sweep failed (``mtf cancel``: some jobs could not be cancelled), 2 bad input (a one-line
``mtf: error: ...`` message, no traceback; ``MTF_DEBUG=1`` shows the traceback), 3 preempted (the
run checkpointed; rerun to continue), 130 interrupted, 141 (128 + SIGPIPE) when the reader of the
output went away (``mtf status | head -1``), silently, as ``cat`` and ``git log`` do.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Sequence

from model_training_framework.errors import MTFError
from model_training_framework.experiment.exit_codes import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    one_line_message,
)
from model_training_framework.version import __version__

from . import cancel, consolidate, demo, inspect, plot, resume, status, sweep, train

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_PREEMPTED",
    "build_parser",
    "main",
]

# the status a shell reports for a process that SIGPIPE ended (Python ignores SIGPIPE, so a write
# to a pipe whose reader has gone raises BrokenPipeError instead)
EXIT_BROKEN_PIPE = 128 + 13

COMMANDS = [train, sweep, status, cancel, resume, plot, inspect, consolidate, demo]

_EPILOG = """\
exit codes: 0 success; 1 some sweep experiments failed (mtf cancel: some jobs not cancelled);
2 bad input; 3 preempted (checkpointed, rerun to continue); 130 interrupted.
Set MTF_DEBUG=1 to see tracebacks.
Run 'mtf COMMAND --help' for the options of a command."""


def build_parser() -> argparse.ArgumentParser:
    """The ``mtf`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mtf",
        description="Fault-tolerant multi-dataloader training, sweeps and SLURM launching.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        return EXIT_INTERRUPTED
    except (
        MTFError,
        ValueError,
        TypeError,
        OSError,
        ImportError,
        RuntimeError,
        ArithmeticError,
    ) as err:
        if isinstance(err, BrokenPipeError) and _stdout_reader_has_gone():
            _discard_stdout()
            return EXIT_BROKEN_PIPE
        if os.environ.get("MTF_DEBUG"):
            raise
        print(f"mtf: error: {one_line_message(err)}", file=sys.stderr)
        return EXIT_ERROR


def _stdout_reader_has_gone() -> bool:
    """Whether stdout is a pipe whose read end is closed (poll reports an error on it), so that a
    BrokenPipeError from another pipe (a subprocess, a DataLoader worker) is still reported."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again on the pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
