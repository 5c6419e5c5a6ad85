"""``mtf consolidate CKPT OUT``: one plain state_dict file from a sharded (FSDP) checkpoint.

CKPT is a sharded checkpoint directory written with ``distributed.strategy: fsdp`` (or a run
directory: its ``latest.ckpt``). The shards of every rank are joined in this one process (no
GPUs or process group needed) and the model's state_dict is written to OUT with
``torch.save``, so ``model.load_state_dict(torch.load(OUT))`` works on an unsharded model, e.g.
for inference. Optimizer state is left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run_consolidate"]


def run_consolidate(checkpoint: Path, output: Path) -> int:
    """Write the consolidated model state_dict; returns the exit code."""
    from model_training_framework.trainer.state.dcp import consolidate_checkpoint

    written = consolidate_checkpoint(checkpoint, output)
    print(f"wrote {written}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf consolidate``."""
    parser = subparsers.add_parser(
        "consolidate",
        help="write the model of a sharded (FSDP) checkpoint as one plain state_dict file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        metavar="CKPT",
        help="sharded checkpoint directory or run directory",
    )
    parser.add_argument("output", type=Path, metavar="OUT", help="file to write (torch.save)")
    parser.set_defaults(handler=lambda args: run_consolidate(args.checkpoint, args.output))
