"""Per-fit state that the trainer's components share: the ``Run`` record and its builders.

``prepare_run`` checks ``fit``'s inputs into a ``RunPlan`` (no side effects); once the run
directory is this fit's and the checkpoint to resume from is known, ``open_run`` builds the
``Run`` complete: every per-fit component, none filled in later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model_training_framework.errors import SchedulingError
from model_training_framework.trainer.checks import (
    check_count,
    check_fit_loaders,
    check_limits,
    check_optimizer_ids,
    check_resume_from,
    warn_ignored_settings,
)
from model_training_framework.trainer.data.fingerprint import DataFingerprint, NullFingerprint
from model_training_framework.trainer.data.schedule import LoaderSchedule, SamplingStrategy
from model_training_framework.trainer.data.streams import LoaderStream, build_streams
from model_training_framework.trainer.data.user_loaders import (
    check_train_loader_classes,
    loader_length,
)
from model_training_framework.trainer.metrics.early_stopping import (
    EarlyStopping,
    MonitoredMetricsCheck,
)
from model_training_framework.trainer.metrics.profiling import (
    NullProfiler,
    TraceWindow,
    build_profiler,
)
from model_training_framework.trainer.metrics.progress import (
    ProgressDisplay,
    build_progress_display,
)
from model_training_framework.trainer.metrics.running import NullTrainMetrics, TrainMetrics
from model_training_framework.trainer.optim.nonfinite import FiniteGuard, build_guard
from model_training_framework.trainer.runtime.preemption import PreemptionHandler
from model_training_framework.trainer.runtime.worker_signals import shield_workers
from model_training_framework.trainer.state.manager import CheckpointManager
from model_training_framework.trainer.train_state import TrainState

if TYPE_CHECKING:
    from model_training_framework.trainer.config import GenericTrainerConfig, MultiDataLoaderConfig
    from model_training_framework.trainer.runtime.distributed import DistributedContext
    from model_training_framework.trainer.state.config_diff import ResumeDiff
    from model_training_framework.trainer.state.format import CheckpointFormat

__all__ = ["ResumePoint", "Run", "RunPlan", "build_schedule", "open_run", "prepare_run"]


@dataclass(frozen=True)
class RunPlan:
    """``fit``'s inputs, checked against the config before anything is opened or written."""

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
    loader_config: MultiDataLoaderConfig  # rebuilds schedules of other world sizes

    def steps_done(self, global_step: int) -> bool:
        """Whether ``max_steps`` optimizer steps have been taken."""
        return self.max_steps is not None and global_step >= self.max_steps

    def limits(self) -> dict[str, int | None]:
        """This fit's training limits, as recorded with an early stop."""
        return {"max_epochs": self.max_epochs, "max_steps": self.max_steps}


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a fit resumes from, its payload, and how its run differs from this one."""

    path: Path
    payload: dict[str, Any]
    diff: ResumeDiff


@dataclass
class Run:
    """Everything one ``fit`` call works with, built complete before the first step."""

    plan: RunPlan
    state: TrainState  # the trainer's loop counters
    base_seed: int
    streams: list[LoaderStream]
    metrics: TrainMetrics
    fingerprint: DataFingerprint
    early_stopping: EarlyStopping
    monitored_check: MonitoredMetricsCheck
    checkpoints: CheckpointManager
    trace: TraceWindow
    guard: FiniteGuard
    profiler: NullProfiler
    progress: ProgressDisplay
    preemption: PreemptionHandler
    config_record: dict[str, Any]  # the config as fit started
    optimizer_hparams: list[list[dict]]  # as built, before resume
    resume: ResumePoint | None
    # This fit's own marks (not saved: a resume sets them from the restored step).
    checkpoint_path: Path | None = None  # newest checkpoint written or loaded
    last_saved_step: int = -1
    last_train_log_step: int = 0  # the last step whose training metrics were logged
    start_step: int = 0  # global step this fit started (or resumed) at
    last_log_time: float = field(default_factory=time.perf_counter)

    @property
    def names(self) -> list[str]:
        """The train loaders' names."""
        return self.plan.names

    @property
    def schedule(self) -> LoaderSchedule:
        """The train loaders' schedule."""
        return self.plan.schedule

    @property
    def loader_config(self) -> MultiDataLoaderConfig:
        """``train_loader_config`` (rebuilds schedules of other world sizes)."""
        return self.plan.loader_config

    @property
    def grad_accum(self) -> int:
        """Micro-batches per optimizer step."""
        return self.plan.grad_accum

    @property
    def loss_scales(self) -> list[float]:
        """Per loader: loss weight / gradient accumulation steps."""
        return self.plan.loss_scales

    @property
    def optimizer_ids(self) -> list[int]:
        """Per loader: the optimizer its windows step."""
        return self.plan.optimizer_ids

    def schedule_position(self) -> int:
        """Batches handed out so far in the current epoch."""
        return sum(self.plan.schedule.counts())

    def is_finished(self) -> bool:
        """Whether this fit resumed a run with nothing left to do under this fit's limits: it
        stopped early under the same limits, or it reached them, and owes no validation.

        NOTE [finished rerun]: such a fit (SPEC section 10: it returns at once with its status)
        writes nothing to the run directory: no logger is opened (no ``metrics.jsonl`` record,
        no ``hparams.json``, no TensorBoard events file), no checkpoint is saved, and the
        console (or Python logging) says why. Its hooks still run.
        """
        state, plan = self.state, self.plan
        if self.resume is None or state.pending_validation is not None:
            return False
        return (
            state.stopped_early_under == plan.limits()
            or state.epoch >= plan.max_epochs
            or plan.steps_done(state.global_step)
        )

    def close(self) -> None:
        """Close the progress display, the trace and the loaders' workers; wait for an
        asynchronous checkpoint write (its error is raised here)."""
        self.progress.close()
        self.trace.close(self.state.global_step)
        for stream in self.streams:
            stream.close()
        self.checkpoints.wait()


def build_schedule(
    loader_config: MultiDataLoaderConfig,
    lengths: Sequence[int | None],
    weights: Sequence[float] | None = None,
) -> LoaderSchedule:
    """A ``LoaderSchedule`` from a ``MultiDataLoaderConfig`` and the loaders' lengths;
    ``weights`` (WEIGHTED) replace the config's ``dataloader_weights``."""
    return LoaderSchedule(
        loader_config.sampling_strategy,
        lengths,
        policy=loader_config.epoch_length_policy,
        weights=loader_config.dataloader_weights if weights is None else weights,
        pattern=loader_config.alternating_pattern,
        steps_per_epoch=loader_config.steps_per_epoch,
        cycle=loader_config.cycle_short_loaders,
        burst_size=loader_config.burst_size,
        names=loader_config.resolved_names(len(lengths)),
    )


def _check_val_schedule(loader_config: MultiDataLoaderConfig, val_loaders: list[Any]) -> None:
    """The validation schedule builds for these loaders (built again at each validation).

    Raises:
        SchedulingError: it does not (say, an iterable loader under SUM_OF_LENGTHS), named as
            the validation schedule's, before the first training step.
    """
    try:
        build_schedule(loader_config, [loader_length(v) for v in val_loaders])
    except SchedulingError as err:
        raise SchedulingError(
            f"val_loader_config: {err} (for validation: with cycle_short_loaders=False each "
            "loader is read until it runs dry or its share of steps_per_epoch is used)"
        ) from err


def prepare_run(
    config: GenericTrainerConfig,
    train_loaders: Any,
    val_loaders: Any,
    max_epochs: int,
    max_steps: int | None,
    *,
    num_optimizers: int,
    training_step: Callable[..., Any] | None,
    validation_step: Callable[..., Any] | None,
    loader_weights: Sequence[float] | None = None,
    resume_from: Any = None,
) -> RunPlan:
    """Check ``fit``'s inputs against the config and build the ``RunPlan`` (no side effects).

    ``loader_weights`` (set by ``update_loader_weights`` before this fit) replace the
    config's WEIGHTED weights. ``resume_from`` is fit's ``resume_from_checkpoint`` (only its
    type is checked here; the checkpoint itself is read when the run starts).

    Raises:
        TypeError, ValueError: bad loaders, counts that do not match the loaders, bad limits.
    """
    if training_step is None:
        raise ValueError(
            "no training step: call trainer.set_training_step(fn) before fit(); fn is "
            "called as fn(trainer, batch, batch_idx, dataloader_idx, dataloader_name)"
        )
    train, val_loaders = check_fit_loaders(train_loaders, val_loaders)
    if val_loaders and validation_step is None:
        raise ValueError(
            "val_loaders were given but no validation step: call set_validation_step(fn)"
        )
    config.validate_for_fit()
    check_resume_from(resume_from)
    check_train_loader_classes(train)
    check_limits(max_epochs, max_steps)
    num = len(train)
    config.train_loader_config.validate_against_loaders(num, "train_loader_config")
    warn_ignored_settings(config.train_loader_config.ignored_settings(), "train_loader_config")
    if val_loaders:
        config.val_loader_config.validate_against_loaders(len(val_loaders), "val_loader_config")
        warn_ignored_settings(config.val_loader_config.ignored_settings(), "val_loader_config")
        _check_val_schedule(config.val_loader_config, val_loaders)
    check_count(config.loss_weights_per_loader, num, "loss_weights_per_loader", "loss weight")
    optimizer_ids = check_optimizer_ids(config.per_loader_optimizer_id, num, num_optimizers)
    lengths = [loader_length(x) for x in train]
    strategy = config.train_loader_config.sampling_strategy
    if loader_weights is not None and strategy is not SamplingStrategy.WEIGHTED:
        raise SchedulingError(
            "trainer.update_loader_weights() was called before fit, but weights apply only to "
            f"SamplingStrategy.WEIGHTED and train_loader_config.sampling_strategy is "
            f"{strategy.name}"
        )
    schedule = build_schedule(config.train_loader_config, lengths, loader_weights)
    grad_accum = config.performance.gradient_accumulation_steps
    weights = config.loss_weights_per_loader or [1.0] * num
    return RunPlan(
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


def open_run(
    plan: RunPlan,
    config: GenericTrainerConfig,
    *,
    state: TrainState,
    dist: DistributedContext,
    device: torch.device,
    run_dir: Path,
    resume: ResumePoint | None,
    config_record: dict[str, Any],
    optimizer_hparams: list[list[dict]],
    code_directories: list[Path] | None,
    checkpoint_format: CheckpointFormat,
) -> Run:
    """Build every per-fit component of the ``Run`` (the run directory is this fit's now).

    Agrees on the base seed with every rank (the config's seed, else a random one) and
    shields loader worker processes from the preemption signals.
    """
    base_seed = dist.broadcast_object(
        config.seed if config.seed is not None else int(torch.randint(2**62, (1,)).item())
    )
    preemption = PreemptionHandler(config.preemption, reduce_max=dist.reduce_max)
    shield_workers([*plan.train_loaders, *plan.val_loaders], preemption.signals)
    streams = build_streams(
        plan.train_loaders,
        plan.names,
        base_seed,
        require_resumable=config.fault_tolerance.require_resumable_iterables,
    )
    metrics = (
        TrainMetrics(plan.names)
        if config.log_loss_every_n_steps is not None
        else NullTrainMetrics(plan.names)  # step metrics off: nothing piles up unread
    )
    fingerprint = (
        DataFingerprint() if config.fault_tolerance.record_data_fingerprint else NullFingerprint()
    )
    early_stopping = EarlyStopping(
        config.early_stopping_patience,
        config.early_stopping_metric,
        config.early_stopping_mode,
        config.early_stopping_min_delta,
    )
    monitored = {
        "early_stopping_metric": config.early_stopping_metric if early_stopping.enabled else None,
        "checkpoint.monitor_metric": config.checkpoint.monitor_metric,
    }
    checkpoints = CheckpointManager(
        config.checkpoint,
        run_dir,
        is_rank_zero=dist.is_rank_zero,
        code_directory=code_directories,
        checkpoint_format=checkpoint_format,
    )
    perf = config.performance
    return Run(
        plan=plan,
        state=state,
        base_seed=base_seed,
        streams=streams,
        metrics=metrics,
        fingerprint=fingerprint,
        early_stopping=early_stopping,
        monitored_check=MonitoredMetricsCheck(
            monitored,
            has_validation=bool(plan.val_loaders),
            logs_train_metrics=config.log_loss_every_n_steps is not None,
        ),
        checkpoints=checkpoints,
        guard=build_guard(
            config.on_nonfinite_loss,
            device,
            reduce_max=dist.reduce_max,
            rank=dist.rank,
            world_size=dist.world_size,
        ),
        profiler=build_profiler(
            config.profile_training,
            plan.names,
            plan.val_names,
            sync_cuda=perf.sync_cuda_for_profiling,
        ),
        progress=build_progress_display(config.logging, is_rank_zero=dist.is_rank_zero),
        trace=TraceWindow(
            perf.profiler_trace_start_step,
            perf.profiler_trace_num_steps,
            run_dir / "profiler",
            dist.rank,
        ),
        preemption=preemption,
        config_record=config_record,
        optimizer_hparams=optimizer_hparams,
        resume=resume,
    )
