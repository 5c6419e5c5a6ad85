"""Per-fit state that the trainer's components share: the ``Run`` record and its builders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from model_training_framework.trainer.checks import check_count, check_loaders
from model_training_framework.trainer.data.schedule import LoaderSchedule
from model_training_framework.trainer.data.streams import loader_length

__all__ = ["Run", "build_schedule", "prepare_run"]


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
    loader_config: Any = None  # train_loader_config (rebuilds schedules of other world sizes)
    base_seed: int = 0
    streams: list[Any] = field(default_factory=list)
    metrics: Any = None
    fingerprint: Any = None
    early_stopping: Any = None
    monitored_check: Any = None
    checkpoints: Any = None
    trace: Any = None
    is_distributed: bool = False
    has_batch_start_hooks: bool = True
    has_batch_end_hooks: bool = True
    has_backward_hooks: bool = True
    checkpoint_path: Any = None
    last_saved_step: int = -1
    last_train_log_step: int = 0  # the last step whose training metrics were logged
    start_step: int = 0  # global step this fit started (or resumed) at
    # The limits under which the resumed run stopped early (None: it did not): a rerun with
    # the same limits returns at once instead of training further.
    stopped_early_under: dict[str, int | None] | None = None
    owns_run_directory: bool = False  # this fit took the run directory lock (releases it)
    config_record: dict[str, Any] = field(default_factory=dict)  # the config as fit started
    optimizer_hparams: list[list[dict]] = field(default_factory=list)  # as built, before resume
    resume_point: tuple[Any, dict[str, Any]] | None = None  # (path, payload) to resume from
    resume_diff: Any = None  # config_diff.ResumeDiff against the checkpoint's run
    epoch_fresh: bool = True
    window_size: int = 0
    is_window_synced: bool = False  # its last micro-batch all-reduced gradients (DDP)
    last_loader: int = 0
    last_log_time: float = field(default_factory=time.perf_counter)

    def steps_done(self, global_step: int) -> bool:
        """Whether ``max_steps`` optimizer steps have been taken."""
        return self.max_steps is not None and global_step >= self.max_steps

    def limits(self) -> dict[str, int | None]:
        """This fit's training limits, as recorded with an early stop."""
        return {"max_epochs": self.max_epochs, "max_steps": self.max_steps}

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


def prepare_run(
    config: Any,
    train_loaders: Any,
    val_loaders: list[Any],
    max_epochs: int,
    max_steps: int | None,
    *,
    num_optimizers: int,
) -> Run:
    """Check ``fit``'s inputs against the config and build the ``Run`` (no side effects).

    Raises:
        TypeError, ValueError: bad loaders, counts that do not match the loaders, bad limits.
    """
    config.validate_for_fit()
    train = check_loaders(train_loaders, "train_loaders")
    if max_epochs < 1 or (max_steps is not None and max_steps < 1):
        raise ValueError(f"max_epochs and max_steps must be >= 1; got {max_epochs}, {max_steps}")
    num = len(train)
    config.train_loader_config.validate_against_loaders(num, "train_loader_config")
    if val_loaders:
        config.val_loader_config.validate_against_loaders(len(val_loaders), "val_loader_config")
    check_count(config.per_loader_optimizer_id, num, "per_loader_optimizer_id", "optimizer index")
    check_count(config.loss_weights_per_loader, num, "loss_weights_per_loader", "loss weight")
    optimizer_ids = list(config.per_loader_optimizer_id or [0] * num)
    bad = [i for i in optimizer_ids if not 0 <= i < num_optimizers]
    if bad:
        raise ValueError(
            f"per_loader_optimizer_id names optimizer {bad[0]} but the trainer has "
            f"{num_optimizers} optimizers (valid ids 0..{num_optimizers - 1})"
        )
    schedule = build_schedule(config.train_loader_config, [loader_length(x) for x in train])
    grad_accum = config.performance.gradient_accumulation_steps
    weights = config.loss_weights_per_loader or [1.0] * num
    return Run(
        train_loaders=train,
        val_loaders=val_loaders,
        names=config.train_loader_config.resolved_names(num),
        val_names=config.val_loader_config.resolved_names(len(val_loaders)) if val_loaders else [],
        schedule=schedule,
        optimizer_ids=optimizer_ids,
        loss_scales=[w / grad_accum for w in weights],
        max_epochs=max_epochs,
        max_steps=max_steps,
        grad_accum=grad_accum,
        loader_config=config.train_loader_config,
    )
