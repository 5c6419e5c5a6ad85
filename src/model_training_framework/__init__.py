"""model_training_framework: fault-tolerant multi-dataloader training, sweeps and SLURM.

The most used names are re-exported here and imported lazily on first access (PEP 562), so
``import model_training_framework`` stays cheap and never imports an optional backend
(tensorboard, wandb, matplotlib: those load inside the class that needs them). The
subpackages (``trainer``, ``config``, ``experiment``, ``launch``, the facades ``slurm`` and
``runner``, ``errors``) are reachable as attributes too.

Example:
    >>> import model_training_framework as mtf
    >>> mtf.SamplingStrategy("weighted")
    <SamplingStrategy.WEIGHTED: 'weighted'>
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from model_training_framework.version import __version__

if TYPE_CHECKING:
    from model_training_framework.config import (
        ConfigurationManager,
        ExperimentConfig,
        NamingStrategy,
        ParameterGrid,
        ParameterGridSearch,
    )
    from model_training_framework.errors import (
        CheckpointError,
        ConfigError,
        HookError,
        LauncherError,
        MTFError,
        RunDirectoryBusyError,
        RunDirectoryLockError,
        SchedulingError,
    )
    from model_training_framework.launch.local import LocalLauncher
    from model_training_framework.launch.slurm import (
        BatchSubmissionResult,
        SBATCHTemplateEngine,
        SLURMJobMonitor,
        SLURMLauncher,
    )
    from model_training_framework.trainer import (
        CheckpointConfig,
        EpochLengthPolicy,
        FaultToleranceConfig,
        FitResult,
        FitStatus,
        GenericTrainer,
        GenericTrainerConfig,
        HooksConfig,
        LoggingConfig,
        MultiDataLoaderConfig,
        PerformanceConfig,
        PreemptionConfig,
        SamplingStrategy,
        TrainerHooks,
        ValAggregation,
        ValidationConfig,
        ValidationFrequency,
        WarmStartConfig,
        WarmStartResult,
    )

__all__ = [
    "BatchSubmissionResult",
    "CheckpointConfig",
    "CheckpointError",
    "ConfigError",
    "ConfigurationManager",
    "EpochLengthPolicy",
    "ExperimentConfig",
    "FaultToleranceConfig",
    "FitResult",
    "FitStatus",
    "GenericTrainer",
    "GenericTrainerConfig",
    "HookError",
    "HooksConfig",
    "LauncherError",
    "LocalLauncher",
    "LoggingConfig",
    "MTFError",
    "MultiDataLoaderConfig",
    "NamingStrategy",
    "ParameterGrid",
    "ParameterGridSearch",
    "PerformanceConfig",
    "PreemptionConfig",
    "RunDirectoryBusyError",
    "RunDirectoryLockError",
    "SBATCHTemplateEngine",
    "SLURMJobMonitor",
    "SLURMLauncher",
    "SamplingStrategy",
    "SchedulingError",
    "TrainerHooks",
    "ValAggregation",
    "ValidationConfig",
    "ValidationFrequency",
    "WarmStartConfig",
    "WarmStartResult",
    "__version__",
]

_TRAINER = "model_training_framework.trainer"
_CONFIG = "model_training_framework.config"
_SLURM = "model_training_framework.launch.slurm"
_ERRORS = "model_training_framework.errors"

# public name -> public (sub)package that exports it
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(
        [
            "CheckpointConfig",
            "EpochLengthPolicy",
            "FaultToleranceConfig",
            "FitResult",
            "FitStatus",
            "GenericTrainer",
            "GenericTrainerConfig",
            "HooksConfig",
            "LoggingConfig",
            "MultiDataLoaderConfig",
            "PerformanceConfig",
            "PreemptionConfig",
            "SamplingStrategy",
            "TrainerHooks",
            "ValAggregation",
            "ValidationConfig",
            "ValidationFrequency",
            "WarmStartConfig",
            "WarmStartResult",
        ],
        _TRAINER,
    ),
    **dict.fromkeys(
        [
            "ConfigurationManager",
            "ExperimentConfig",
            "NamingStrategy",
            "ParameterGrid",
            "ParameterGridSearch",
        ],
        _CONFIG,
    ),
    **dict.fromkeys(
        ["BatchSubmissionResult", "SBATCHTemplateEngine", "SLURMJobMonitor", "SLURMLauncher"],
        _SLURM,
    ),
    "LocalLauncher": "model_training_framework.launch.local",
    **dict.fromkeys(
        [
            "CheckpointError",
            "ConfigError",
            "HookError",
            "LauncherError",
            "MTFError",
            "RunDirectoryBusyError",
            "RunDirectoryLockError",
            "SchedulingError",
        ],
        _ERRORS,
    ),
}

_SUBPACKAGES = frozenset(
    {"cli", "config", "errors", "experiment", "launch", "runner", "slurm", "trainer"}
)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBPACKAGES)
