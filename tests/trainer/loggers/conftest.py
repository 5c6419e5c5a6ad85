"""Shared fixtures for the logger tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model_training_framework.trainer.config import LoggingConfig


@pytest.fixture
def make_logging_config() -> Callable[..., LoggingConfig]:
    """Build a real ``LoggingConfig`` with the given overrides."""
    return LoggingConfig


@pytest.fixture
def read_jsonl() -> Callable[[Path], list[dict[str, Any]]]:
    """Parse every line of a JSONL file (fails on any unreadable line)."""

    def read(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    return read
