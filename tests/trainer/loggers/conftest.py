"""Shared fixtures for the logger tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    from model_training_framework.trainer.config import LoggingConfig
except ImportError:  # TODO(loggers): drop once trainer/config.py imports on its own.
    LoggingConfig = None  # type: ignore[assignment,misc]

_DEFAULTS = {
    "logger_type": "console",
    "composite_loggers": None,
    "log_scalars_every_n_steps": 10,
    "tensorboard_dir": None,
    "wandb_project": None,
    "wandb_entity": None,
    "wandb_mode": None,
    "progress_bar": True,
}


@pytest.fixture
def make_logging_config() -> Callable[..., Any]:
    """Build a logging config section with the given overrides."""

    def make(**overrides: Any) -> Any:
        if LoggingConfig is not None:
            return LoggingConfig(**overrides)
        from types import SimpleNamespace

        return SimpleNamespace(**{**_DEFAULTS, **overrides})

    return make


@pytest.fixture
def read_jsonl() -> Callable[[Path], list[dict[str, Any]]]:
    """Parse every line of a JSONL file (fails on any unreadable line)."""

    def read(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    return read
