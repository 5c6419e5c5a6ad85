"""Public facade: ``from model_training_framework.slurm import SLURMLauncher`` keeps working.

The code lives in :mod:`model_training_framework.launch.slurm`; names are imported from there
on first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CLI_TRAIN_COMMAND",
    "DEFAULT_COMMAND",
    "BatchSubmissionResult",
    "CodeVersion",
    "Directives",
    "ExperimentSubmission",
    "JobInfo",
    "JobState",
    "JobWaitTimeout",
    "SBATCHTemplateEngine",
    "SLURMJobMonitor",
    "SLURMLauncher",
    "ShellCommand",
    "SlurmCommands",
    "TemplateError",
    "read_code_version",
]

_TARGET = "model_training_framework.launch.slurm"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_TARGET), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
