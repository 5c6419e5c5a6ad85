"""How the step runs and is observed: performance, processes (DDP/FSDP2), logging and hooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from model_training_framework.config.loading import ConfigModel
from model_training_framework.trainer.config.fields import (
    Choice,
    DottedPath,
    PathText,
    PositiveFiniteFloat,
    PositiveInt,
    check_unique,
)

__all__ = ["DistributedConfig", "HooksConfig", "LoggingConfig", "PerformanceConfig"]


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


def _not_jsonl(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "jsonl":
        raise ValueError(
            "'jsonl' is not a backend to choose: metrics.jsonl is always written; choose "
            "from 'console', 'tensorboard', 'wandb' (or 'composite' with several)"
        )
    return value


NotJsonl = BeforeValidator(_not_jsonl)


class LoggingConfig(ConfigModel):
    """Which logging backends run and how often."""

    logger_type: Annotated[
        Literal["console", "tensorboard", "wandb", "composite"], Choice, NotJsonl
    ] = Field(
        default="console",
        description=(
            "Logging backend: 'console', 'tensorboard', 'wandb' or 'composite' (several, "
            "listed in composite_loggers). metrics.jsonl is always written too."
        ),
    )
    composite_loggers: list[Annotated[_LOGGER_NAMES, Choice, NotJsonl]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Backends used by 'composite': any of 'console', 'tensorboard', 'wandb'; set only "
            "with logger_type 'composite' (else an error)."
        ),
    )
    log_scalars_every_n_steps: PositiveInt | None = Field(
        default=50,
        description=(
            "Profiling metrics are logged every N optimizer steps (steps, >= 1), at each "
            "epoch end and at the last step of a max_steps run (the means since the last log); "
            "None: off (no profile/... metrics are logged)."
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
        if self.logger_type != "composite" and self.composite_loggers is not None:
            return [
                (
                    "composite_loggers",
                    f"set to {self.composite_loggers} but logger_type is "
                    f"'{self.logger_type}', so they would be unused; set logger_type: "
                    "composite to use them, or remove composite_loggers",
                )
            ]
        return []


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
        description=(
            "Dotted paths of TrainerHooks subclasses to instantiate and register (null or "
            "nothing: no hooks)."
        ),
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
