"""Typed experiment configs, YAML loading and (later) sweeps.

Names are imported lazily on first access (PEP 562), so that ``trainer/config.py`` can use
``config.loading`` without an import cycle through ``config.experiment``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_training_framework.config.experiment import (
        ExperimentConfig,
        OptimizerConfig,
        SlurmConfig,
        TrainingConfig,
    )
    from model_training_framework.config.loading import ConfigModel, SerializableConfig

    # --- sweep names (added by the sweep helper): TYPE_CHECKING imports go here ---

__all__ = [
    "ConfigModel",
    "ExperimentConfig",
    "OptimizerConfig",
    "SerializableConfig",
    "SlurmConfig",
    "TrainingConfig",
    # --- sweep names: ParameterGrid, ParameterGridSearch, NamingStrategy, ConfigurationManager ---
]

# public name -> module that defines it
_LAZY_NAMES: dict[str, str] = {
    "ConfigModel": "model_training_framework.config.loading",
    "SerializableConfig": "model_training_framework.config.loading",
    "ExperimentConfig": "model_training_framework.config.experiment",
    "OptimizerConfig": "model_training_framework.config.experiment",
    "SlurmConfig": "model_training_framework.config.experiment",
    "TrainingConfig": "model_training_framework.config.experiment",
    # --- sweep names (added by the sweep helper): "ParameterGrid": "...config.grid", ... ---
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
