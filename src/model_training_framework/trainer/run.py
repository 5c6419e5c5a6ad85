"""Per-fit state that the trainer's components share: the ``Run`` record and its builders."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .schedule import LoaderSchedule

__all__ = ["Run", "build_schedule", "import_dotted"]


@dataclass
class Run:
    """Everything one ``fit`` call works with, checked and built before the first step."""

    train_loaders: list[Any]
    val_loaders: list[Any]
    names: list[str]
    val_names: list[str]
    schedule: LoaderSchedule
    optimizer_ids: list[int]
    loss_scales: list[float]  # loss weight / gradient accumulation steps, per loader
    max_epochs: int
    max_steps: int | None
    grad_accum: int
    base_seed: int = 0
    streams: list[Any] = field(default_factory=list)
    metrics: Any = None
    fingerprint: Any = None
    early_stopping: Any = None
    checkpoints: Any = None
    checkpoint_path: Any = None
    last_saved_step: int = -1
    start_step: int = 0  # global step this fit started (or resumed) at
    epoch_fresh: bool = True
    window_size: int = 0
    window_has_grads: bool = False
    last_loader: int = 0
    last_log_time: float = field(default_factory=time.perf_counter)

    def steps_done(self, global_step: int) -> bool:
        """Whether ``max_steps`` optimizer steps have been taken."""
        return self.max_steps is not None and global_step >= self.max_steps

    def schedule_position(self) -> int:
        """Batches handed out so far in the current epoch."""
        return sum(self.schedule.counts())


def build_schedule(loader_config: Any, lengths: Sequence[int | None]) -> LoaderSchedule:
    """A ``LoaderSchedule`` from a ``MultiDataLoaderConfig`` and the loaders' lengths."""
    return LoaderSchedule(
        loader_config.sampling_strategy,
        lengths,
        policy=loader_config.epoch_length_policy,
        weights=loader_config.dataloader_weights,
        pattern=loader_config.alternating_pattern,
        steps_per_epoch=loader_config.steps_per_epoch,
        cycle=loader_config.cycle_short_loaders,
        burst_size=loader_config.burst_size,
        names=loader_config.resolved_names(len(lengths)),
    )


def import_dotted(path: str, field_path: str) -> Any:
    """Import ``package.module.Name`` (clear error naming the config field when it fails)."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{field_path}: {path!r} is not a dotted path like 'package.module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{field_path}: cannot import module {module_name!r}: {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"{field_path}: module {module_name!r} has no attribute {attr!r}") from err
