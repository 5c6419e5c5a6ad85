"""``mtf inspect CKPT``: show what a checkpoint holds, without a model or the training code.

CKPT is a checkpoint file, a sharded checkpoint directory (FSDP) or a run directory (its
``latest.ckpt`` is used). Shown: format and
framework version, creation time, code version (git commit, uncommitted changes), epoch and
global step, each loader's position, the schedule, the last metrics (``--all-metrics`` adds the
``profile/`` timings), and per payload section the number of tensors and their size.
``--json`` prints everything, including the full trainer state.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "format_description", "run_inspect"]

_LATEST = "latest.ckpt"
_SHARDED_STATE = "trainer_state.pt"  # see trainer/state/dcp.py (not imported: no torch here)


def _size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _code(version: Mapping[str, Any] | None) -> str:
    if not version or not version.get("commit"):
        return "unknown (not a git checkout)"
    dirty = " with uncommitted changes" if version.get("dirty") else ""
    return f"commit {str(version['commit'])[:12]}{dirty}"


def _loaders(trainer: Mapping[str, Any]) -> list[str]:
    names = trainer.get("loader_names") or []
    streams = trainer.get("streams") or []
    return [
        f"{name}: pass {stream.get('pass_idx')}, next batch {stream.get('next_batch_idx')}"
        for name, stream in zip(names, streams, strict=False)
        if isinstance(stream, Mapping)
    ]


def _schedule(trainer: Mapping[str, Any]) -> str | None:
    schedule = trainer.get("schedule")
    if not isinstance(schedule, Mapping) or "strategy" not in schedule:
        return None
    return (
        f"{schedule['strategy']}, {schedule.get('policy')}, position {schedule.get('position')} "
        f"in epoch {schedule.get('epoch')}"
    )


def _metric(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def format_description(info: Mapping[str, Any], all_metrics: bool = False) -> str:
    """Render :func:`describe_checkpoint`'s dict as aligned ``label  value`` lines."""
    trainer = info.get("trainer") if isinstance(info.get("trainer"), Mapping) else {}
    lines = [
        ("checkpoint", f"{info['path']} ({_size(info['file_size_bytes'])})"),
        (
            "format",
            f"version {info.get('format_version')}, written by framework {info.get('framework_version')}",
        ),
        ("created", str(info.get("created_at"))),
        ("code", _code(info.get("code_version"))),
        (
            "progress",
            f"{info.get('epoch')} epoch(s) completed, global step {info.get('global_step')}",
        ),
    ]
    lines += [("loader", text) for text in _loaders(trainer)]
    schedule = _schedule(trainer)
    if schedule:
        lines.append(("schedule", schedule))
    metrics = info.get("metrics") or {}
    shown = {k: v for k, v in metrics.items() if all_metrics or not k.startswith("profile/")}
    lines += [("metric", f"{key} = {_metric(shown[key])}") for key in sorted(shown)]
    for name, counts in (info.get("sections") or {}).items():
        lines.append(
            ("section", f"{name}: {counts['num_tensors']} tensor(s), {_size(counts['num_bytes'])}")
        )
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in lines)


def run_inspect(path: Path, as_json: bool, all_metrics: bool) -> int:
    """Print the checkpoint description; returns the exit code."""
    from model_training_framework.trainer.state.manager import describe_checkpoint

    is_run_dir = path.is_dir() and (path / _LATEST).exists()
    file = path / _LATEST if is_run_dir else path
    if path.is_dir() and not is_run_dir and not (path / _SHARDED_STATE).exists():
        raise FileNotFoundError(
            f"{path} is a directory without {_LATEST} and not a sharded checkpoint (no "
            f"{_SHARDED_STATE}); pass a .ckpt file or directory"
        )
    info = describe_checkpoint(file)
    print(
        json.dumps(info, indent=2, default=str)
        if as_json
        else format_description(info, all_metrics)
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="show what a checkpoint holds (versions, progress, loader positions, metrics)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", type=Path, metavar="CKPT", help="checkpoint file or run directory"
    )
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.add_argument("--all-metrics", action="store_true", help="include profile/ timings")
    parser.set_defaults(
        handler=lambda args: run_inspect(args.checkpoint, args.json, args.all_metrics)
    )
