"""Typed trainer configuration: ``GenericTrainerConfig`` and its sections.

Every model validates each field on construction and on assignment; errors are
:class:`~model_training_framework.errors.ConfigError` (a ``ValueError``) whose lines start with
the field path, e.g. ``train_loader_config.dataloader_weights[1]: Input should be greater than 0
(got -1.0)``. Rules that involve several fields (WEIGHTED needs weights, ...) run when a model is
built and again in ``validate_for_fit()``, never on a single assignment, so this works::

    cfg.train_loader_config.sampling_strategy = SamplingStrategy.WEIGHTED
    cfg.train_loader_config.dataloader_weights = [0.5, 0.3, 0.2]

Enum fields accept the member, its value or its name as a string in any case (``"weighted"``,
``"WEIGHTED"``); choice fields (``"min"``/``"max"``, ...) accept any case too. Field types and
per-field validators live in :mod:`.config_fields`.

Example:
    >>> cfg = GenericTrainerConfig(
    ...     train_loader_config=MultiDataLoaderConfig(
    ...         sampling_strategy="weighted", dataloader_weights=[3, 1]
    ...     )
    ... )
    >>> cfg.train_loader_config.resolved_names(2)
    ['dl0', 'dl1']
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from model_training_framework.config.imports import import_callable
from model_training_framework.config.legacy import TRAINER_RULES, LegacyRule
from model_training_framework.config.loading import ConfigModel, SerializableConfig
from model_training_framework.errors import ConfigError
from model_training_framework.trainer.config_fields import (
    Choice,
    DottedPath,
    Name,
    PathText,
    PositiveFiniteFloat,
    PositiveInt,
    check_aggregation_fn,
    check_device,
    check_experiment_name,
    check_filename_template,
    check_signal_name,
    check_unique,
    enum_field,
)
from model_training_framework.trainer.data.schedule import EpochLengthPolicy, SamplingStrategy

__all__ = [
    "CheckpointConfig",
    "DistributedConfig",
    "EpochLengthPolicy",
    "FaultToleranceConfig",
    "GenericTrainerConfig",
    "HooksConfig",
    "LoggingConfig",
    "MultiDataLoaderConfig",
    "PerformanceConfig",
    "PreemptionConfig",
    "SamplingStrategy",
    "ValAggregation",
    "ValidationConfig",
    "ValidationFrequency",
    "WarmStartConfig",
]


class ValidationFrequency(str, enum.Enum):
    """When validation runs: after every ``validate_every_n_epochs`` epochs, or every N steps."""

    PER_EPOCH = "per_epoch"
    EVERY_N_STEPS = "every_n_steps"


class ValAggregation(str, enum.Enum):
    """How per-loader validation metrics are combined into ``val/<metric>``."""

    MICRO_AVG_WEIGHTED_BY_SAMPLES = "micro_avg_weighted_by_samples"
    MACRO_AVG_EQUAL_LOADERS = "macro_avg_equal_loaders"
    PRIMARY_METRIC_PER_LOADER = "primary_metric_per_loader"
    CUSTOM = "custom"


# ----------------------------------------------------------------------------- sections


class MultiDataLoaderConfig(ConfigModel):
    """How several dataloaders share one epoch: order, epoch length, cycling (docs/multi_loader.md)."""

    sampling_strategy: Annotated[SamplingStrategy, enum_field(SamplingStrategy)] = Field(
        default=SamplingStrategy.ROUND_ROBIN,
        description=(
            "Which loader gives the next batch: 'sequential' (all of loader 0, then loader 1, "
            "...), 'round_robin' (loaders take turns, burst_size batches each), 'weighted' "
            "(proportions from dataloader_weights) or 'alternating' (follow alternating_pattern)."
        ),
    )
    dataloader_names: Annotated[list[Name] | None, AfterValidator(check_unique)] = Field(
        default=None,
        min_length=1,
        description=(
            "One unique name per loader, used in metric keys (train/dl_<name>/...) and passed to "
            "the step functions. Only letters, digits, '.', '_' and '-'. None: dl0, dl1, ..."
        ),
    )
    dataloader_weights: list[PositiveFiniteFloat] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Relative share of batches per loader for 'weighted' sampling; one finite value > 0 "
            "per loader, need not sum to 1."
        ),
    )
    alternating_pattern: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Loader indices visited cyclically by 'alternating' sampling, e.g. [0, 0, 1]; each "
            "entry takes burst_size consecutive batches."
        ),
    )
    epoch_length_policy: Annotated[EpochLengthPolicy, enum_field(EpochLengthPolicy)] = Field(
        default=EpochLengthPolicy.SUM_OF_LENGTHS,
        description=(
            "How long an epoch is: 'sum_of_lengths' (every batch once), 'max_of_lengths', "
            "'min_of_lengths' or 'fixed_num_steps' (steps_per_epoch micro-batches; the only "
            "policy allowed for loaders without a length)."
        ),
    )
    steps_per_epoch: PositiveInt | None = Field(
        default=None,
        description="Micro-batches per epoch under 'fixed_num_steps' (batches, >= 1).",
    )
    cycle_short_loaders: bool = Field(
        default=True,
        description=(
            "When a loader runs out before its share of the epoch: true starts a new pass of it "
            "(reshuffled), false drops its remaining slots so the epoch gets shorter."
        ),
    )
    burst_size: PositiveInt = Field(
        default=1,
        description="Consecutive batches a loader gives per turn (batches, >= 1).",
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        strategy, names = self.sampling_strategy, self.dataloader_names
        if strategy is SamplingStrategy.WEIGHTED and self.dataloader_weights is None:
            issues.append(
                (
                    "dataloader_weights",
                    "required when sampling_strategy is 'weighted'; give "
                    "one weight > 0 per loader, e.g. [0.7, 0.3]",
                )
            )
        if strategy is SamplingStrategy.ALTERNATING and self.alternating_pattern is None:
            issues.append(
                (
                    "alternating_pattern",
                    "required when sampling_strategy is 'alternating'; "
                    "give loader indices, e.g. [0, 0, 1]",
                )
            )
        if (
            self.epoch_length_policy is EpochLengthPolicy.FIXED_NUM_STEPS
            and self.steps_per_epoch is None
        ):
            issues.append(
                (
                    "steps_per_epoch",
                    "required when epoch_length_policy is 'fixed_num_steps'; "
                    "give the number of micro-batches per epoch",
                )
            )
        weights = self.dataloader_weights
        if names is not None and weights is not None and len(weights) != len(names):
            issues.append(
                (
                    "dataloader_weights",
                    f"has {len(weights)} entries but dataloader_names has {len(names)}; "
                    "give one weight per named loader",
                )
            )
        if names is not None and self.alternating_pattern is not None:
            bad = sorted({i for i in self.alternating_pattern if i >= len(names)})
            if bad:
                issues.append(
                    (
                        "alternating_pattern",
                        f"indices {bad} are out of range for "
                        f"{len(names)} dataloader_names (valid: 0..{len(names) - 1})",
                    )
                )
        return issues

    def validate_against_loaders(self, num_loaders: int, field_path: str) -> None:
        """Check names, weights and pattern against the loaders actually given to ``fit``.

        Args:
            num_loaders: number of loaders in the list given to ``fit`` (>= 1).
            field_path: where this config sits, e.g. ``"train_loader_config"``.

        Raises:
            ConfigError: (a ``ValueError``) naming the field, the counts and the fix.
        """
        kind = _loader_kind(field_path)
        if num_loaders < 1:
            raise ConfigError(f"fit() got no {kind}loaders; pass a non-empty list of DataLoaders")
        got = f"fit() got {num_loaders} {kind}loader{'s' if num_loaders != 1 else ''}"
        if self.dataloader_names is not None and len(self.dataloader_names) != num_loaders:
            raise ConfigError(
                f"{field_path}.dataloader_names has {len(self.dataloader_names)} entries but "
                f"{got}; give one name per loader"
            )
        if self.dataloader_weights is not None and len(self.dataloader_weights) != num_loaders:
            raise ConfigError(
                f"{field_path}.dataloader_weights has {len(self.dataloader_weights)} entries "
                f"but {got}; give one weight per loader"
            )
        if self.alternating_pattern is not None:
            bad = sorted({i for i in self.alternating_pattern if i >= num_loaders})
            if bad:
                raise ConfigError(
                    f"{field_path}.alternating_pattern uses loader indices {bad} but {got}; "
                    f"use indices 0..{num_loaders - 1}"
                )

    def resolved_names(self, num_loaders: int) -> list[str]:
        """Return the configured names, or ``dl0, dl1, ...`` when none are configured.

        Args:
            num_loaders: number of loaders.

        Returns:
            One name per loader.

        Raises:
            ConfigError: when the configured names do not match ``num_loaders``.
        """
        if self.dataloader_names is None:
            return [f"dl{i}" for i in range(num_loaders)]
        self.validate_against_loaders(num_loaders, self._field_path or "dataloader config")
        return list(self.dataloader_names)


def _loader_kind(field_path: str) -> str:
    last = field_path.rsplit(".", 1)[-1]
    if last.endswith("_loader_config"):
        return last.removesuffix("_loader_config") + " "
    return ""


class CheckpointConfig(ConfigModel):
    """Where and when checkpoints are written, and how many are kept (docs/fault_tolerance.md)."""

    root_dir: PathText = Field(
        default="runs",
        min_length=1,
        description=(
            "Parent directory of every run directory <root_dir>/<experiment_name>/ (a str or "
            "any path-like object, stored as str)."
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
        description="Under SLURM, requeue the job ('scontrol requeue $SLURM_JOB_ID') after it.",
    )
    resume_from_latest_symlink: bool = Field(
        default=True,
        description=(
            "When fit() gets no resume_from_checkpoint, resume from this run's latest "
            "checkpoint if one exists."
        ),
    )


class PerformanceConfig(ConfigModel):
    """Accumulation, precision, compilation and DataLoader settings."""

    gradient_accumulation_steps: PositiveInt = Field(
        default=1,
        description=(
            "Micro-batches per optimizer step (>= 1); the loss is divided by this number and "
            "global_step counts optimizer steps."
        ),
    )
    clip_grad_norm: PositiveFiniteFloat | None = Field(
        default=None,
        description="Clip the stepped optimizer's gradient norm to this value (> 0); None: off.",
    )
    use_amp: bool = Field(
        default=False, description="Run forward passes under torch.autocast with amp_dtype."
    )
    amp_dtype: Annotated[Literal["bfloat16", "float16"], Choice] = Field(
        default="bfloat16",
        description=(
            "Autocast dtype when use_amp is true: 'bfloat16' or 'float16' (float16 on CUDA adds "
            "a GradScaler)."
        ),
    )
    compile_model: bool = Field(default=False, description="Wrap the model with torch.compile.")
    dataloader_num_workers: int = Field(
        default=0,
        ge=0,
        description="Worker processes for DataLoaders the framework builds itself (>= 0).",
    )
    pin_memory: bool = Field(
        default=False, description="pin_memory for DataLoaders the framework builds itself."
    )
    persistent_workers: bool = Field(
        default=False,
        description="persistent_workers for DataLoaders the framework builds (needs workers > 0).",
    )
    prefetch_factor: PositiveInt | None = Field(
        default=None,
        description=(
            "Batches loaded in advance per worker for DataLoaders the framework builds (>= 1); "
            "None: PyTorch's default."
        ),
    )
    sync_cuda_for_profiling: bool = Field(
        default=False,
        description="Synchronise CUDA around timed sections for exact GPU timings (slower).",
    )
    profiler_trace_start_step: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Global step after which a torch.profiler trace starts (>= 0); the Chrome trace is "
            "written to <run dir>/profiler/. None: no trace."
        ),
    )
    profiler_trace_num_steps: PositiveInt = Field(
        default=3, description="Optimizer steps the torch.profiler trace covers (>= 1)."
    )


_LOGGER_NAMES = Literal["console", "tensorboard", "wandb"]


class LoggingConfig(ConfigModel):
    """Which logging backends run and how often."""

    logger_type: Annotated[Literal["console", "tensorboard", "wandb", "composite"], Choice] = Field(
        default="console",
        description=(
            "Logging backend: 'console', 'tensorboard', 'wandb' or 'composite' (several, "
            "listed in composite_loggers). metrics.jsonl is always written too."
        ),
    )
    composite_loggers: list[Annotated[_LOGGER_NAMES, Choice]] | None = Field(
        default=None,
        min_length=1,
        description="Backends used by 'composite': any of 'console', 'tensorboard', 'wandb'.",
    )
    log_scalars_every_n_steps: PositiveInt | None = Field(
        default=50,
        description=(
            "Profiling metrics are logged every N optimizer steps (steps, >= 1); None: off "
            "(no profile/... metrics are logged)."
        ),
    )
    tensorboard_dir: PathText | None = Field(
        default=None,
        min_length=1,
        description="TensorBoard event directory (str or path-like); None: <run dir>/tensorboard.",
    )
    wandb_project: str | None = Field(default=None, description="Weights & Biases project.")
    wandb_entity: str | None = Field(default=None, description="Weights & Biases entity/team.")
    wandb_mode: Annotated[Literal["online", "offline", "disabled"] | None, Choice] = Field(
        default=None,
        description="W&B mode: 'online', 'offline' or 'disabled'; None: WANDB_MODE or online.",
    )
    progress_bar: bool = Field(
        default=True,
        description=(
            "Live progress bar on a terminal (plain log lines when not a TTY); it counts the "
            "epoch's batches (`batch 120/1000`), log lines the global step (`step 1120`)."
        ),
    )

    @field_validator("composite_loggers")
    @classmethod
    def _unique_loggers(cls, value: list[str] | None) -> list[str] | None:
        return check_unique(value)

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        if self.logger_type == "composite" and self.composite_loggers is None:
            return [
                (
                    "composite_loggers",
                    "required when logger_type is 'composite'; list the "
                    "backends, e.g. ['console', 'tensorboard']",
                )
            ]
        return []


class ValidationConfig(ConfigModel):
    """When validation runs and how the metrics of several loaders are aggregated."""

    frequency: Annotated[ValidationFrequency, enum_field(ValidationFrequency)] = Field(
        default=ValidationFrequency.PER_EPOCH,
        description=(
            "'per_epoch' (every validate_every_n_epochs epochs) or 'every_n_steps' "
            "(every validation.every_n_steps optimizer steps)."
        ),
    )
    every_n_steps: PositiveInt | None = Field(
        default=None,
        description="Validation interval in optimizer steps for 'every_n_steps' (>= 1).",
    )
    aggregation: Annotated[ValAggregation, enum_field(ValAggregation)] = Field(
        default=ValAggregation.MICRO_AVG_WEIGHTED_BY_SAMPLES,
        description=(
            "How val/<metric> combines loaders: 'micro_avg_weighted_by_samples', "
            "'macro_avg_equal_loaders', 'primary_metric_per_loader' or 'custom' (aggregation_fn)."
        ),
    )
    aggregation_fn: Annotated[
        Callable[..., Any] | str | None, BeforeValidator(check_aggregation_fn)
    ] = Field(
        default=None,
        description=(
            "For 'custom': fn(metrics_by_loader) -> dict, or its dotted path "
            "'package.module.function' (imported when first used). A callable is saved as its "
            "dotted path, so it must be defined at module level."
        ),
    )
    primary_metric: str = Field(
        default="loss",
        min_length=1,
        description="Metric reported per loader by 'primary_metric_per_loader'.",
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.frequency is ValidationFrequency.EVERY_N_STEPS and self.every_n_steps is None:
            issues.append(
                (
                    "every_n_steps",
                    "required when frequency is 'every_n_steps'; give the "
                    "interval in optimizer steps",
                )
            )
        if self.aggregation is ValAggregation.CUSTOM and self.aggregation_fn is None:
            issues.append(
                (
                    "aggregation_fn",
                    "required when aggregation is 'custom'; give a function "
                    "fn(metrics_by_loader) -> dict or its dotted path",
                )
            )
        return issues

    def resolve_aggregation_fn(self) -> Callable[..., Any] | None:
        """Return ``aggregation_fn`` as a callable, importing it when given as a dotted path.

        Returns:
            The callable, or None when none is configured.

        Raises:
            ConfigError: when the path cannot be imported or does not name a callable.
        """
        value = self.aggregation_fn
        if value is None or callable(value):
            return value
        path = f"{self._field_path}.aggregation_fn" if self._field_path else "aggregation_fn"
        return import_callable(value, path)


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


_PYTHON_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DistributedConfig(ConfigModel):
    """How several processes share the model: DDP or FSDP2 (docs/distributed.md)."""

    strategy: Annotated[Literal["ddp", "fsdp"], Choice] = Field(
        default="ddp",
        description=(
            "'ddp' replicates the model on every rank (DistributedDataParallel; single-file "
            "checkpoints written by rank 0); 'fsdp' shards parameters, gradients and optimizer "
            "state with torch.distributed.fsdp.fully_shard (FSDP2) and writes sharded "
            "checkpoint directories with torch.distributed.checkpoint. 'fsdp' also runs with one "
            "process (one shard)."
        ),
    )
    fsdp_wrap: Annotated[
        list[Annotated[str, Field(pattern=_PYTHON_IDENTIFIER)]], AfterValidator(check_unique)
    ] = Field(
        default_factory=list,
        description=(
            "With 'fsdp': class names of the submodules sharded as units (e.g. "
            "['TransformerBlock']), each gathered only while it runs; the root model is always "
            "sharded too. Empty: the whole model is one unit. Ignored by 'ddp'."
        ),
    )
    fsdp_reshard_after_forward: bool = Field(
        default=True,
        description=(
            "With 'fsdp': free the gathered parameters after each unit's forward and gather "
            "them again for backward (less memory, one more all-gather). Ignored by 'ddp'."
        ),
    )
    find_unused_parameters: bool | None = Field(
        default=None,
        description=(
            "With 'ddp': DistributedDataParallel's find_unused_parameters. None: true when "
            "there are several train loaders (per-loader heads leave parameters without "
            "gradient), else false. Ignored by 'fsdp'."
        ),
    )


class HooksConfig(ConfigModel):
    """Hooks created from dotted class paths, with constructor arguments per class."""

    hook_classes: list[DottedPath] = Field(
        default_factory=list,
        description="Dotted paths of TrainerHooks subclasses to instantiate and register.",
    )
    hook_configs: dict[DottedPath, dict[str, Any]] = Field(
        default_factory=dict,
        description="Constructor keyword arguments per hook class: dotted path -> kwargs.",
    )
    continue_on_hook_error: bool = Field(
        default=False,
        description="Log a hook's exception and keep training instead of stopping.",
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        unused = [key for key in self.hook_configs if key not in self.hook_classes]
        if unused:
            return [
                (
                    "hook_configs",
                    f"{unused} are not listed in hook_classes; add them there or fix the path",
                )
            ]
        return []


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


def _val_loader_defaults() -> MultiDataLoaderConfig:
    return MultiDataLoaderConfig(
        sampling_strategy=SamplingStrategy.SEQUENTIAL, cycle_short_loaders=False
    )


def _with_val_defaults(value: Any) -> Any:
    """A mapping given for val_loader_config starts from the validation defaults."""
    if isinstance(value, dict):
        return {
            "sampling_strategy": SamplingStrategy.SEQUENTIAL,
            "cycle_short_loaders": False,
            **value,
        }
    return value


# ----------------------------------------------------------------------------- top level


class GenericTrainerConfig(SerializableConfig):
    """Everything ``GenericTrainer`` needs besides the model, optimizers and loaders."""

    _legacy_rules: ClassVar[tuple[LegacyRule, ...]] = TRAINER_RULES

    experiment_name: Annotated[Name, AfterValidator(check_experiment_name)] = Field(
        default="experiment",
        description=(
            "Names the run directory <checkpoint.root_dir>/<experiment_name>/; only letters, "
            "digits, '.', '_' and '-'."
        ),
    )
    seed: int | None = Field(
        default=None,
        description=(
            "None leaves RNGs alone; an int seeds Python, NumPy, torch and every loader's shuffle."
        ),
    )
    device: Annotated[str, Choice, AfterValidator(check_device)] = Field(
        default="auto",
        description="'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ...",
    )
    train_loader_config: MultiDataLoaderConfig | None = Field(
        default=None,
        description="How the train loaders are scheduled; required by GenericTrainer.",
    )
    val_loader_config: Annotated[MultiDataLoaderConfig, BeforeValidator(_with_val_defaults)] = (
        Field(
            default_factory=_val_loader_defaults,
            description=(
                "How the validation loaders are scheduled. Default (also for keys left out of "
                "a mapping): 'sequential' without cycling, so each batch is seen once."
            ),
        )
    )
    per_loader_optimizer_id: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Optimizer index for each train loader (loader i -> optimizer i-th entry); "
            "None: every loader uses optimizer 0."
        ),
    )
    loss_weights_per_loader: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = (
        Field(
            default=None,
            min_length=1,
            description="Factor (>= 0) applied to each train loader's loss before backward.",
        )
    )
    log_loss_every_n_steps: PositiveInt | None = Field(
        default=50,
        description=(
            "Step metrics (train/..., learning rates, throughput) are logged every N optimizer "
            "steps (>= 1); None: off (no step metrics, console lines or progress updates)."
        ),
    )
    validate_every_n_epochs: PositiveInt = Field(
        default=1,
        description="With validation.frequency 'per_epoch': validate every N epochs (>= 1).",
    )
    early_stopping_patience: PositiveInt | None = Field(
        default=None,
        description=(
            "Stop after this many validations without improvement (>= 1); None: never stop early."
        ),
    )
    early_stopping_metric: str = Field(
        default="val/loss",
        min_length=1,
        description="Logged metric key watched for early stopping.",
    )
    early_stopping_mode: Annotated[Literal["min", "max"], Choice] = Field(
        default="min", description="Whether a lower ('min') or higher ('max') metric is better."
    )
    early_stopping_min_delta: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Smallest change of the metric that counts as an improvement (>= 0).",
    )
    on_nonfinite_loss: Annotated[Literal["raise", "skip"], Choice] = Field(
        default="raise",
        description=(
            "NaN/inf loss or gradients: 'raise' stops at the next logging step or save, naming "
            "the first bad step, before saving; 'skip' drops the accumulation window (one host "
            "sync per step) and counts it in train/skipped_nonfinite."
        ),
    )
    check_nonfinite_gradients: bool = Field(
        default=False,
        description=(
            "With on_nonfinite_loss='raise', also check every optimizer step's gradients (one "
            "fused read and write of all gradients per step, about 7 % of a step of a large "
            "bf16 MLP on an H200), so that a finite loss with NaN/inf gradients is named at its "
            "own step. Off: losses are checked, and every checkpoint refuses non-finite "
            "weights. 'skip' and gradient clipping always check (clipping at no extra cost)."
        ),
    )
    profile_training: bool = Field(
        default=True,
        description="Log per-loader timings profile/... (data, forward, backward, optimizer).",
    )
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="Checkpoint location and triggers."
    )
    preemption: PreemptionConfig = Field(
        default_factory=PreemptionConfig, description="Preemption signal handling."
    )
    performance: PerformanceConfig = Field(
        default_factory=PerformanceConfig,
        description="Accumulation, precision, compilation and DataLoader settings.",
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="Logging backends and intervals."
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig, description="Validation schedule and aggregation."
    )
    fault_tolerance: FaultToleranceConfig = Field(
        default_factory=FaultToleranceConfig, description="Exact-resume requirements."
    )
    hooks: HooksConfig = Field(
        default_factory=HooksConfig, description="Hooks created from dotted class paths."
    )
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig,
        description="Multi-process strategy: DDP (default) or sharded FSDP2.",
    )
    warm_start: WarmStartConfig | None = Field(
        default=None, description="Weights-only initialisation for fresh runs; None: off."
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        names = self.train_loader_config.dataloader_names if self.train_loader_config else None
        if names is None:
            return []
        issues: list[tuple[str, str]] = []
        for field in ("per_loader_optimizer_id", "loss_weights_per_loader"):
            values = getattr(self, field)
            if values is not None and len(values) != len(names):
                issues.append(
                    (
                        field,
                        f"has {len(values)} entries but train_loader_config."
                        f"dataloader_names has {len(names)}; give one entry per train loader",
                    )
                )
        return issues

    def require_train_loader_config(self) -> MultiDataLoaderConfig:
        """Return ``train_loader_config``, which a trainer needs (it may be None in a config).

        Raises:
            ConfigError: it is None; the message says what to add.
        """
        if self.train_loader_config is None:
            raise ConfigError(
                "train_loader_config: MultiDataLoaderConfig not provided; it is required, even "
                "for one loader: GenericTrainerConfig(train_loader_config="
                "MultiDataLoaderConfig(dataloader_names=['main']))"
            )
        return self.train_loader_config

    def validate_for_fit(self) -> None:
        """Re-run every check and require ``train_loader_config``.

        Raises:
            ConfigError: listing every problem with its field path.
        """
        self.require_train_loader_config()
        super().validate_for_fit()
