"""``GenericTrainerConfig``: everything ``GenericTrainer`` needs besides the model, optimizers
and loaders, made of the sections in this package."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from model_training_framework.config.legacy import TRAINER_RULES, LegacyRule
from model_training_framework.config.loading import SerializableConfig
from model_training_framework.errors import ConfigError
from model_training_framework.trainer.config.checkpoint import (
    CheckpointConfig,
    FaultToleranceConfig,
    PreemptionConfig,
    WarmStartConfig,
)
from model_training_framework.trainer.config.fields import (
    Choice,
    Name,
    PositiveInt,
    check_device,
    check_experiment_name,
)
from model_training_framework.trainer.config.loaders import MultiDataLoaderConfig
from model_training_framework.trainer.config.runtime import (
    DistributedConfig,
    HooksConfig,
    LoggingConfig,
    PerformanceConfig,
)
from model_training_framework.trainer.config.validation import ValidationConfig
from model_training_framework.trainer.data.schedule import SamplingStrategy

__all__ = ["GenericTrainerConfig"]


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


class GenericTrainerConfig(SerializableConfig):
    """Everything ``GenericTrainer`` needs besides the model, optimizers and loaders."""

    _legacy_rules: ClassVar[tuple[LegacyRule, ...]] = TRAINER_RULES
    # The sections ExperimentConfig (a subclass, in a higher layer) adds: in a trainer config
    # file they are unknown keys whose message says where they belong.
    _sections_of_subclasses: ClassVar[dict[str, str]] = dict.fromkeys(
        ("model", "data", "optimizer", "scheduler", "training", "slurm", "custom_params"),
        "ExperimentConfig",
    )

    experiment_name: Annotated[Name, AfterValidator(check_experiment_name)] = Field(
        default="experiment",
        description=(
            "Names the run directory <checkpoint.root_dir>/<experiment_name>/; only letters, "
            "digits, '.', '_' and '-', at most 255 characters (one directory name)."
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
        description=(
            "'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ...; checked when the "
            "trainer is built: a device the machine lacks is a ConfigError listing those it has."
        ),
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
            "sync per step), leaves its metrics out of the logged means and counts it in "
            "train/skipped_nonfinite; the global step still advances, and "
            "train/samples_per_sec counts its samples."
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
