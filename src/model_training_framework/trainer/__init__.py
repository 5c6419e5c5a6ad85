"""Fault-tolerant multi-dataloader trainer: public names only."""

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
