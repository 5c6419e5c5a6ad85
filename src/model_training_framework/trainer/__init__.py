"""Fault-tolerant multi-dataloader trainer: public names only."""

from model_training_framework.trainer.config import (
    CheckpointConfig,
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

__all__ = [
    "CheckpointConfig",
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
