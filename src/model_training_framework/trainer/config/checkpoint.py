"""Checkpoints, preemption and resume: where and when state is saved, and how a run starts again."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from model_training_framework.config.loading import ConfigModel
from model_training_framework.trainer.config.fields import (
    Choice,
    DottedPath,
    PathText,
    PositiveFiniteFloat,
    PositiveInt,
    check_filename_template,
    check_signal_name,
)

__all__ = ["CheckpointConfig", "FaultToleranceConfig", "PreemptionConfig", "WarmStartConfig"]


class CheckpointConfig(ConfigModel):
    """Where and when checkpoints are written, and how many are kept (docs/fault_tolerance.md)."""

    root_dir: PathText = Field(
        default="runs",
        min_length=1,
        description=(
            "Parent directory of every run directory <root_dir>/<experiment_name>/ (a str or "
            "any path-like object, stored as str; a leading ~ is the home directory)."
        ),
    )
    save_every_n_steps: PositiveInt | None = Field(
        default=None, description="Save every N optimizer steps (steps, >= 1); None: off."
    )
    save_every_n_epochs: PositiveInt | None = Field(
        default=1, description="Save at the end of every N epochs (epochs, >= 1); None: off."
    )
    save_every_n_minutes: PositiveFiniteFloat | None = Field(
        default=None,
        description=(
            "Save when this much wall-clock time passed since the last save (minutes, > 0), "
            "checked at optimizer-step boundaries; None: off."
        ),
    )
    max_checkpoints: PositiveInt = Field(
        default=3,
        description=(
            "Number of newest periodic checkpoints kept (>= 1); best.ckpt and the latest "
            "pointer are not counted."
        ),
    )
    filename_template: Annotated[str, AfterValidator(check_filename_template)] = Field(
        default="epoch_{epoch}_step_{step}.ckpt",
        description="Checkpoint file name; may use {epoch} and {step} and must contain {step}.",
    )
    monitor_metric: str | None = Field(
        default=None,
        min_length=1,
        description="Logged metric key (e.g. 'val/loss') that best.ckpt tracks; None: no best.",
    )
    monitor_mode: Annotated[Literal["min", "max"], Choice] = Field(
        default="min", description="Whether a lower ('min') or higher ('max') metric is better."
    )
    async_save: bool = Field(
        default=False,
        description="Write checkpoint files in a background thread while training continues.",
    )


class PreemptionConfig(ConfigModel):
    """How a preemption signal is handled: checkpoint at the next step boundary, then requeue."""

    signal: Annotated[str, BeforeValidator(check_signal_name)] = Field(
        default="SIGUSR1",
        description=(
            "Signal that requests a checkpoint and a clean stop, e.g. 'SIGUSR1' (SLURM's "
            "--signal); name with or without 'SIG', any case, or its number. SIGTERM is always "
            "handled too."
        ),
    )
    max_checkpoint_sec: PositiveFiniteFloat = Field(
        default=300.0,
        description=(
            "Time budget for the preemption checkpoint (seconds, > 0); a warning is logged when "
            "it is exceeded."
        ),
    )
    requeue_job: bool = Field(
        default=True,
        description=(
            "Under SLURM, requeue the job after it ('scontrol requeue $SLURM_JOB_ID'; an array "
            "task requeues '<array>_<task>', never the whole array)."
        ),
    )
    resume_from_latest_symlink: bool = Field(
        default=True,
        description=(
            "When fit() gets no resume_from_checkpoint, resume from this run's latest "
            "checkpoint if one exists."
        ),
    )


class FaultToleranceConfig(ConfigModel):
    """What a run needs to resume bit-identically (docs/fault_tolerance.md, exact resume)."""

    require_resumable_iterables: bool = Field(
        default=True,
        description=(
            "An iterable loader without state_dict()/load_state_dict() is an error at fit; "
            "false lets it restart from its beginning on resume instead."
        ),
    )
    record_data_fingerprint: bool = Field(
        default=True,
        description=(
            "Keep a rolling hash of (loader, sample indices), logged and saved in checkpoints."
        ),
    )
    lock_run_directory: bool = Field(
        default=True,
        description=(
            "fit owns the run directory through an exclusive lock on <run_dir>/.lock: a second "
            "process is refused before it writes anything. False trains without the lock (for "
            "filesystems that do not support locks; see docs/fault_tolerance.md)."
        ),
    )
    allow_schedule_changes_on_resume: bool = Field(
        default=False,
        description=(
            "Resuming a checkpoint whose run had other train_loader_config.dataloader_weights "
            "or performance.gradient_accumulation_steps is an error before anything is "
            "written; true continues with the new values from the resumed step (a warning "
            "lists them)."
        ),
    )


class WarmStartConfig(ConfigModel):
    """Weights-only initialisation, used only when the run has no checkpoint to resume from."""

    loader_class: DottedPath = Field(
        description=(
            "Dotted path of fn(trainer, checkpoint_path) -> WarmStartResult, or of a class "
            "whose instances are such callables."
        ),
    )
    checkpoint_path: PathText | None = Field(
        default=None,
        min_length=1,
        description="Path passed to the loader (str or path-like; None allowed).",
    )
    strict: bool = Field(
        default=True,
        description="Default strictness of load_state_dict (a WarmStartResult may override it).",
    )
