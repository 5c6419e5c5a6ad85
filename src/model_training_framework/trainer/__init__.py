"""Fault-tolerant multi-dataloader trainer: public names only.

Names are imported on first access (PEP 562), so that importing one trainer module (say
``trainer.state.code_version`` from a launcher on a login node) does not import the whole
trainer and torch with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_training_framework.trainer.builtin_hooks import (
        EarlyStoppingHook,
        GradientMonitorHook,
        LoggingHook,
        ModelCheckpointHook,
        RuntimeProfilingHook,
    )
    from model_training_framework.trainer.config import (
        CheckpointConfig,
        DistributedConfig,
        EpochLengthPolicy,
        FaultToleranceConfig,
        GenericTrainerConfig,
        HooksConfig,
        LoggingConfig,
        MultiDataLoaderConfig,
        PerformanceConfig,
        PreemptionConfig,
        SamplingStrategy,
        ValAggregation,
        ValidationConfig,
        ValidationFrequency,
        WarmStartConfig,
    )
    from model_training_framework.trainer.hooks import TrainerHooks
    from model_training_framework.trainer.results import FitResult, FitStatus, WarmStartResult
    from model_training_framework.trainer.trainer import GenericTrainer

_PACKAGE = "model_training_framework.trainer"

# public name -> module that defines it
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(
        [
            "EarlyStoppingHook",
            "GradientMonitorHook",
            "LoggingHook",
            "ModelCheckpointHook",
            "RuntimeProfilingHook",
        ],
        f"{_PACKAGE}.builtin_hooks",
    ),
    **dict.fromkeys(
        [
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
        ],
        f"{_PACKAGE}.config",
    ),
    "TrainerHooks": f"{_PACKAGE}.hooks",
    **dict.fromkeys(["FitResult", "FitStatus", "WarmStartResult"], f"{_PACKAGE}.results"),
    "GenericTrainer": f"{_PACKAGE}.trainer",
}

__all__ = [
    "CheckpointConfig",
    "DistributedConfig",
    "EarlyStoppingHook",
    "EpochLengthPolicy",
    "FaultToleranceConfig",
    "FitResult",
    "FitStatus",
    "GenericTrainer",
    "GenericTrainerConfig",
    "GradientMonitorHook",
    "HooksConfig",
    "LoggingConfig",
    "LoggingHook",
    "ModelCheckpointHook",
    "MultiDataLoaderConfig",
    "PerformanceConfig",
    "PreemptionConfig",
    "RuntimeProfilingHook",
    "SamplingStrategy",
    "TrainerHooks",
    "ValAggregation",
    "ValidationConfig",
    "ValidationFrequency",
    "WarmStartConfig",
    "WarmStartResult",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
