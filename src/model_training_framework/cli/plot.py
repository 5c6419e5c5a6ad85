"""``mtf plot RUN_DIR``: draw a run's losses and metrics (per loader) into one PNG.

Reads ``<RUN_DIR>/metrics.jsonl`` and writes ``<RUN_DIR>/plots/metrics.png`` (or ``-o``).
Panels: training loss (total and per loader), validation loss, other validation metrics,
learning rates and throughput. Needs matplotlib (``pip install model-training-framework[plot]``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run_plot"]


def run_plot(run_dir: Path, output: Path | None) -> int:
    """Write the PNG and print its path; returns the exit code."""
    from model_training_framework.plotting import plot_run

    print(plot_run(run_dir, output))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf plot``."""
    parser = subparsers.add_parser(
        "plot",
        help="plot a run's losses and metrics per loader into a PNG",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="run directory (holds metrics.jsonl)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="PNG path (default: RUN_DIR/plots/metrics.png)",
    )
    parser.set_defaults(handler=lambda args: run_plot(args.run_dir, args.output))
