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
per-field validators live in :mod:`.fields`; each section has its module in this package
(``loaders``, ``validation``, ``checkpoint``, ``runtime``, ``trainer_config``).

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

from model_training_framework.trainer.config.checkpoint import (
    CheckpointConfig,
    FaultToleranceConfig,
    PreemptionConfig,
    WarmStartConfig,
)
from model_training_framework.trainer.config.loaders import MultiDataLoaderConfig
from model_training_framework.trainer.config.runtime import (
    DistributedConfig,
    HooksConfig,
    LoggingConfig,
    PerformanceConfig,
)
from model_training_framework.trainer.config.trainer_config import GenericTrainerConfig
from model_training_framework.trainer.config.validation import (
    ValAggregation,
    ValidationConfig,
    ValidationFrequency,
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
