"""``ExperimentConfig``: one whole experiment (model, data, optimizer, training, SLURM resources).

It has every field of :class:`~model_training_framework.trainer.config.GenericTrainerConfig`
(it subclasses it) plus the sections below; :meth:`ExperimentConfig.to_trainer_config` returns
the trainer part on its own. ``model``, ``data`` and ``custom_params`` accept arbitrary keys.
``experiment_name`` is what sweeps set; it names the run and checkpoint directory.

Example:
    >>> exp = ExperimentConfig.from_dict(
    ...     {"experiment_name": "mlp", "optimizer": {"lr": 3e-4}, "training": {"max_epochs": 5}}
    ... )
    >>> exp.to_trainer_config().experiment_name
    'mlp'
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from model_training_framework.config.imports import is_dotted_path
from model_training_framework.config.legacy import EXPERIMENT_RULES, LegacyRule
from model_training_framework.config.loading import ConfigModel
from model_training_framework.trainer.config import GenericTrainerConfig

__all__ = ["ExperimentConfig", "OptimizerConfig", "SlurmConfig", "TrainingConfig"]

_SLURM_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$")
_SLURM_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_SCHEDULER_INTERVALS = ("step", "epoch")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_directive_value(value: str | None) -> str | None:
    """Values land on ``#SBATCH`` lines: no line breaks or other control characters."""
    if value is not None and any(ord(ch) < 32 for ch in value):
        raise ValueError(f"{value!r} contains a line break or control character")
    return value


def _check_slurm_time(value: str) -> str:
    if not _SLURM_TIME.match(value):
        raise ValueError(
            f"{value!r} is not a Slurm time limit; use 'MM', 'HH:MM:SS' or 'D-HH:MM:SS'"
        )
    return value


def _check_slurm_mem(value: str) -> str:
    if not _SLURM_MEM.match(value):
        raise ValueError(f"{value!r} is not a Slurm memory size; use e.g. '4G', '500M', '16000'")
    return value


SlurmText = Annotated[str, Field(min_length=1), AfterValidator(_check_directive_value)]


class OptimizerConfig(ConfigModel):
    """The optimizer ``mtf train`` builds (``torch.optim.<name>`` or a dotted path)."""

    name: str = Field(
        default="adamw",
        min_length=1,
        description=(
            "Optimizer: a torch.optim class name in any case ('adamw', 'sgd', ...) or the "
            "dotted path of an optimizer class."
        ),
    )
    lr: float = Field(default=1e-3, gt=0, allow_inf_nan=False, description="Learning rate (> 0).")
    weight_decay: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="Weight decay (>= 0)."
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for the optimizer, e.g. {betas: [0.9, 0.95]}.",
    )


class TrainingConfig(ConfigModel):
    """Length of training, passed to ``fit``."""

    max_epochs: int = Field(default=1, ge=1, description="Number of epochs to train (>= 1).")
    max_steps: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many optimizer steps (>= 1), even mid-epoch; None: no cap.",
    )


class SlurmConfig(ConfigModel):
    """Resources requested from SLURM for one experiment (``#SBATCH`` lines)."""

    account: SlurmText | None = Field(default=None, description="--account; None: omitted.")
    partition: SlurmText | None = Field(default=None, description="--partition; None: omitted.")
    nodes: int = Field(default=1, ge=1, description="--nodes (>= 1).")
    ntasks_per_node: int = Field(
        default=1, ge=1, description="--ntasks-per-node: processes per node (>= 1)."
    )
    gpus_per_node: int = Field(default=0, ge=0, description="--gpus-per-node (>= 0).")
    cpus_per_task: int = Field(default=1, ge=1, description="--cpus-per-task (>= 1).")
    mem: Annotated[str, AfterValidator(_check_slurm_mem)] = Field(
        default="4G", description="--mem per node, e.g. '4G', '500M' (Slurm units K/M/G/T)."
    )
    time: Annotated[str, AfterValidator(_check_slurm_time)] = Field(
        default="01:00:00", description="--time limit: 'MM', 'HH:MM:SS' or 'D-HH:MM:SS'."
    )
    constraint: SlurmText | None = Field(
        default=None, description="--constraint node features; None: omitted."
    )
    qos: SlurmText | None = Field(default=None, description="--qos; None: omitted.")
    extra_directives: list[SlurmText] = Field(
        default_factory=list,
        description="Additional '#SBATCH' options, one per entry, e.g. '--exclusive'.",
    )
    signal_grace_s: int = Field(
        default=120,
        ge=1,
        le=65535,
        description=(
            "Seconds before the time limit at which SLURM sends the preemption signal "
            "(--signal=B:USR1@<grace>), 1..65535."
        ),
    )


def _check_scheduler(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(
            "needs a 'name' (a torch.optim.lr_scheduler class name or dotted path), "
            f"got keys {sorted(value)}"
        )
    interval = value.get("interval", "step")
    if interval not in _SCHEDULER_INTERVALS:
        raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
    return value


def _check_model_section(value: dict[str, Any]) -> dict[str, Any]:
    factory = value.get("factory")
    if factory is not None and not (isinstance(factory, str) and is_dotted_path(factory)):
        raise ValueError(
            f"'factory' must be the dotted path of a callable, e.g. 'pkg.models.build', "
            f"got {factory!r}"
        )
    return value


def _lower_interval(value: Any) -> Any:
    if isinstance(value, dict) and "interval" in value:
        return {**value, "interval": _lower(value["interval"])}
    return value


class ExperimentConfig(GenericTrainerConfig):
    """A whole experiment: the trainer fields plus model, data, optimizer, training and SLURM."""

    _legacy_rules: ClassVar[tuple[LegacyRule, ...]] = EXPERIMENT_RULES

    model: Annotated[dict[str, Any], AfterValidator(_check_model_section)] = Field(
        default_factory=dict,
        description=(
            "Model section, arbitrary keys; 'factory' is the dotted path of a callable that is "
            "called with the other keys and returns the model."
        ),
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Data section, arbitrary keys (dataset factories by dotted path for mtf train).",
    )
    optimizer: OptimizerConfig = Field(
        default_factory=OptimizerConfig, description="Optimizer built by mtf train."
    )
    scheduler: Annotated[
        dict[str, Any] | None, BeforeValidator(_lower_interval), AfterValidator(_check_scheduler)
    ] = Field(
        default=None,
        description=(
            "Learning-rate scheduler: {name: ..., interval: step|epoch, ...kwargs}; "
            "interval defaults to 'step'. None: no scheduler."
        ),
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Training length passed to fit()."
    )
    slurm: SlurmConfig = Field(
        default_factory=SlurmConfig, description="SLURM resources for this experiment."
    )
    custom_params: dict[str, Any] = Field(
        default_factory=dict, description="Free-form user parameters (sweeps may set them)."
    )

    @field_validator("model", "data", "custom_params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # A YAML section written as `data:` with nothing under it parses as None.
        return {} if value is None else value

    def to_trainer_config(self) -> GenericTrainerConfig:
        """Return a new ``GenericTrainerConfig`` holding this experiment's trainer fields.

        Returns:
            An independent copy (changing it does not change this experiment).
        """
        trainer_fields = set(GenericTrainerConfig.model_fields)
        return GenericTrainerConfig.model_validate(self.model_dump(include=trainer_fields))
