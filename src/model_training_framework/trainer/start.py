"""How a fit starts: from the checkpoint it resumes (checked against this run first), or fresh.

:func:`find_resume_point` only reads, so a refused resume writes nothing; it runs before the
run directory is written. :func:`restore_or_start` then loads the checkpoint's state into the
opened ``Run`` (or seeds and warm-starts a fresh one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.config import GenericTrainerConfig, SamplingStrategy
from model_training_framework.trainer.data.user_loaders import loader_length
from model_training_framework.trainer.loggers import ConsoleLogger, Logger, NullLogger, build_logger
from model_training_framework.trainer.loggers.factory import writes_to_console
from model_training_framework.trainer.parts import TrainerParts
from model_training_framework.trainer.run import ResumePoint, Run, RunPlan
from model_training_framework.trainer.runtime.distributed import DistributedContext
from model_training_framework.trainer.runtime.loader_checks import (
    check_loader_lengths_agree,
    warn_unsharded_loaders,
)
from model_training_framework.trainer.state.manager import CheckpointManager
from model_training_framework.trainer.state.payload import restore_payload
from model_training_framework.trainer.state.resume import find_checkpoint, warm_start
from model_training_framework.trainer.state.resume_check import WEIGHTS_KEY, RunFacts, check_resume
from model_training_framework.trainer.state.rng import seed_everything
from model_training_framework.trainer.state.run_lock import (
    NoRunDirectoryLock,
    RunDirectoryLock,
    build_run_lock,
)

if TYPE_CHECKING:
    from model_training_framework.trainer.results import WarmStartResult

__all__ = [
    "check_inputs_agree",
    "config_record",
    "find_resume_point",
    "open_logger",
    "restore_or_start",
    "take_run_directory",
]

logger = logging.getLogger(__name__)


def check_inputs_agree(parts: TrainerParts, plan: RunPlan, resume_from: str | Path | None) -> None:
    """Every rank was given the same loaders, limits and checkpoint (a collective); warns
    about loaders that every rank reads whole."""
    dist = parts.dist
    warn_unsharded_loaders(
        dist,
        [("train", plan.train_loaders, plan.names), ("val", plan.val_loaders, plan.val_names)],
    )
    check_loader_lengths_agree(
        dist,
        plan.train_loaders,
        plan.names,
        {
            "validation loader lengths": [loader_length(v) for v in plan.val_loaders],
            "max_epochs": plan.max_epochs,
            "max_steps": plan.max_steps,
            "resume_from_checkpoint": None if resume_from is None else str(resume_from),
        },
    )


def config_record(config: GenericTrainerConfig) -> dict[str, Any]:
    """The config as this fit starts, as plain data (its repr when it cannot be)."""
    try:
        return config.to_dict()
    except ConfigError as err:  # e.g. a lambda as validation.aggregation_fn
        logger.warning("config is not fully serialisable (%s); storing its repr", err)
        return {"repr": repr(config)}


def take_run_directory(
    run_dir: Path, config: GenericTrainerConfig, dist: DistributedContext
) -> RunDirectoryLock | NoRunDirectoryLock:
    """Lock the run directory on rank 0, agreed by every rank (NOTE [run directory lock]).

    Raises:
        RunDirectoryBusyError: another live process owns it (on every rank).
    """
    lock = build_run_lock(run_dir, enabled=config.fault_tolerance.lock_run_directory)
    dist.rank_zero_call(lock.acquire)
    return lock


def find_resume_point(
    config: GenericTrainerConfig,
    run_dir: Path,
    parts: TrainerParts,
    plan: RunPlan,
    *,
    resume_from: str | Path | None,
    config_record: dict[str, Any],
    optimizer_hparams: list[list[dict]],
) -> ResumePoint | None:
    """Choose the checkpoint to resume (None: start fresh) and check that it fits this run.

    Raises:
        CheckpointError: the checkpoint cannot be read, or differs from this run in a way it
            cannot continue with (see :func:`check_resume`).
    """
    dist, sharding = parts.dist, parts.sharding
    reader = CheckpointManager(
        config.checkpoint,
        run_dir,
        is_rank_zero=False,
        checkpoint_format=sharding.checkpoint_format,
    )
    found = find_checkpoint(
        reader,
        dist,
        resume_from,
        auto_resume=config.preemption.resume_from_latest_symlink,
        run_dir=run_dir,
    )
    if found is None:
        return None
    path, payload = found
    optimizers = parts.stepper.optimizers
    current = RunFacts(
        config=config_record,
        model_state=parts.module.state_dict(),
        optimizer_layout=[[len(g["params"]) for g in o.param_groups] for o in optimizers],
        optimizer_hparams=optimizer_hparams,
        world_size=dist.world_size,
        loader_names=plan.names,
        loader_lengths=list(plan.schedule.lengths),
    )
    allow = config.fault_tolerance.allow_schedule_changes_on_resume
    reshards = sharding.checkpoint_format.reshards
    diff = dist.rank_zero_call(
        lambda: check_resume(
            path,
            RunFacts.from_payload(payload),
            current,
            allow_schedule_changes=allow,
            reshards=reshards,
        )
    )
    return ResumePoint(path, payload, diff)


def restore_or_start(
    trainer: Any,
    run: Run,
    parts: TrainerParts,
    *,
    config: GenericTrainerConfig,
    loader_weights: Sequence[float] | None,
    warm_start_fn: Callable[..., WarmStartResult] | None,
) -> None:
    """Resume from ``run.resume`` (every component's state, then the RNG last), or start
    fresh: seed, warm-start the weights and begin epoch 0.

    WEIGHTED: when the config's weights differ from those the checkpoint's run was configured
    with, they replace the restored ones (``loader_weights`` when ``update_loader_weights``
    set them before this fit).
    """
    resume = run.resume
    if resume is None:
        if config.seed is not None:
            seed_everything(config.seed)
        warm_start(trainer, parts.module, warm_start_fn, config.warm_start)
        run.schedule.start_epoch(0)
        run.state.epoch_fresh = True
        return
    restore_rng = restore_payload(parts, run, resume.payload, resume.path)
    parts.hooks.call("on_checkpoint_load", trainer, resume.payload)
    restore_rng()  # last: nothing may draw from the streams before training
    weighted = run.schedule.strategy is SamplingStrategy.WEIGHTED
    if weighted and resume.diff.changed(WEIGHTS_KEY):
        # allowed (else check_resume refused): the new weights replace the restored ones
        run.schedule.update_weights(
            config.train_loader_config.dataloader_weights
            if loader_weights is None
            else loader_weights
        )
    run.checkpoint_path = resume.path
    run.start_step = run.last_saved_step = run.last_train_log_step = run.state.global_step


def open_logger(
    config: GenericTrainerConfig, run_dir: Path, run: Run, *, is_rank_zero: bool
) -> Logger:
    """Open the loggers once the start step is known: records a previous attempt logged after
    it are dropped, so a resumed run never repeats a step. A resume is announced. A finished
    run opens none (NOTE [finished rerun] in run.py)."""
    if run.is_finished():
        return _finished_run_notice(config, run, is_rank_zero=is_rank_zero)
    opened = build_logger(
        config.logging,
        run_dir,
        is_rank_zero=is_rank_zero,
        hparams=run.config_record,
        start_step=run.start_step,
    )
    if run.checkpoint_path is None:
        return opened
    state = run.state
    notice = f"resumed from {run.checkpoint_path} at epoch {state.epoch}, step {state.global_step}"
    # Recorded by every backend; the console logger (the default) shows it.
    opened.log_text("resume", notice, state.global_step)
    if is_rank_zero and not writes_to_console(config.logging):
        _say_without_console("resume", notice, state.global_step)
    return opened


def _finished_run_notice(config: GenericTrainerConfig, run: Run, *, is_rank_zero: bool) -> Logger:
    """Say once, on rank 0, that a finished run has nothing to do; the returned logger writes
    no file.

    The line goes to the console logger when one is configured, else as
    :func:`_say_without_console` says.
    """
    state = run.state
    how = "stopped early" if state.stopped_early_under == run.plan.limits() else "finished"
    notice = (
        f"resumed from {run.checkpoint_path} at epoch {state.epoch}, step {state.global_step}: "
        f"the run already {how}; nothing to do (raise max_epochs or max_steps to train further)"
    )
    if not is_rank_zero:
        return NullLogger()
    if writes_to_console(config.logging):
        console = ConsoleLogger()
        console.log_text("status", notice, state.global_step)
        return console
    _say_without_console("status", notice, state.global_step)
    return NullLogger()


def _say_without_console(key: str, notice: str, step: int) -> None:
    """Show ``notice`` once on rank 0's terminal when no console logger is configured.

    The user ran a command and must not get silence: the line goes to Python logging when that
    shows an INFO record of this module (``mtf`` sets it up on stderr, a user may route it to a
    file), so it is not printed twice; else (a plain script leaves logging at WARNING, so
    ``logger.info`` would show nothing) to stderr, as the console logger writes it.
    """
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        logger.info("%s", notice)
    else:
        ConsoleLogger().log_text(key, notice, step)
