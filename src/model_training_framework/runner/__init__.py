"""Public facade: ``from model_training_framework.runner import LocalLauncher`` keeps working.

The code lives in :mod:`model_training_framework.launch.local` (the local launcher) and
:mod:`model_training_framework.experiment.entry` (the job entry point); names are imported on
first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LocalLauncher"]

_TARGET = "model_training_framework.launch.local"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_TARGET), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
