"""Typed experiment configs, YAML loading, parameter sweeps and experiment names.

This package holds the config layer itself (YAML loading, legacy keys, naming, grids and
distributions, paths). It is also a public facade: the experiment config and sweeps (from
``model_training_framework.experiment``) and the trainer's config classes
(``GenericTrainerConfig`` and its sections, from ``model_training_framework.trainer.config``)
are exported here too.

Names are imported lazily on first access (PEP 562): the config layer imports nothing from the
layers above it, and importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_training_framework.config.grid import (
        ChoiceDistribution,
        ConfigView,
        Distribution,
        LogUniformDistribution,
        NormalDistribution,
        ParameterGrid,
        UniformDistribution,
    )
    from model_training_framework.config.loading import ConfigModel, SerializableConfig
    from model_training_framework.config.naming import (
        MAX_NAME_LENGTH,
        NamingStrategy,
        make_experiment_name,
        name_experiments,
    )
    from model_training_framework.experiment.config import (
        ExperimentConfig,
        OptimizerConfig,
        SlurmConfig,
        TrainingConfig,
    )
    from model_training_framework.experiment.manager import (
        ConfigurationManager,
        read_config_file,
        substitute_env_vars,
        write_config_file,
    )
    from model_training_framework.experiment.search import (
        MANIFEST_FILENAME,
        ParameterGridSearch,
        PlannedExperiment,
        describe_experiments,
        load_grid_search,
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

# The trainer's config classes, re-exported from model_training_framework.trainer.config: a new
# section goes here and in __all__ (a test checks both against that module's __all__).
_TRAINER_CONFIG_NAMES = (
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
)

__all__ = [
    "MANIFEST_FILENAME",
    "MAX_NAME_LENGTH",
    "CheckpointConfig",
    "ChoiceDistribution",
    "ConfigModel",
    "ConfigView",
    "ConfigurationManager",
    "DistributedConfig",
    "Distribution",
    "EpochLengthPolicy",
    "ExperimentConfig",
    "FaultToleranceConfig",
    "GenericTrainerConfig",
    "HooksConfig",
    "LogUniformDistribution",
    "LoggingConfig",
    "MultiDataLoaderConfig",
    "NamingStrategy",
    "NormalDistribution",
    "OptimizerConfig",
    "ParameterGrid",
    "ParameterGridSearch",
    "PerformanceConfig",
    "PlannedExperiment",
    "PreemptionConfig",
    "SamplingStrategy",
    "SerializableConfig",
    "SlurmConfig",
    "TrainingConfig",
    "UniformDistribution",
    "ValAggregation",
    "ValidationConfig",
    "ValidationFrequency",
    "WarmStartConfig",
    "describe_experiments",
    "load_grid_search",
    "make_experiment_name",
    "name_experiments",
    "read_config_file",
    "substitute_env_vars",
    "write_config_file",
]

# public name -> module that defines it
_LAZY_NAMES: dict[str, str] = {
    "ConfigModel": "model_training_framework.config.loading",
    "SerializableConfig": "model_training_framework.config.loading",
    "ExperimentConfig": "model_training_framework.experiment.config",
    "OptimizerConfig": "model_training_framework.experiment.config",
    "SlurmConfig": "model_training_framework.experiment.config",
    "TrainingConfig": "model_training_framework.experiment.config",
    # sweeps and experiment names
    "ParameterGrid": "model_training_framework.config.grid",
    "ConfigView": "model_training_framework.config.grid",
    "Distribution": "model_training_framework.config.grid",
    "UniformDistribution": "model_training_framework.config.grid",
    "LogUniformDistribution": "model_training_framework.config.grid",
    "NormalDistribution": "model_training_framework.config.grid",
    "ChoiceDistribution": "model_training_framework.config.grid",
    "NamingStrategy": "model_training_framework.config.naming",
    "make_experiment_name": "model_training_framework.config.naming",
    "name_experiments": "model_training_framework.config.naming",
    "MAX_NAME_LENGTH": "model_training_framework.config.naming",
    "ParameterGridSearch": "model_training_framework.experiment.search",
    "PlannedExperiment": "model_training_framework.experiment.search",
    "load_grid_search": "model_training_framework.experiment.search",
    "describe_experiments": "model_training_framework.experiment.search",
    "MANIFEST_FILENAME": "model_training_framework.experiment.search",
    "ConfigurationManager": "model_training_framework.experiment.manager",
    "substitute_env_vars": "model_training_framework.experiment.manager",
    "read_config_file": "model_training_framework.experiment.manager",
    "write_config_file": "model_training_framework.experiment.manager",
    **dict.fromkeys(_TRAINER_CONFIG_NAMES, "model_training_framework.trainer.config"),
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
