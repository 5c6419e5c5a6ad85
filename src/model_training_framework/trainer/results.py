"""What ``fit`` returns, and what a warm-start loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["FitResult", "FitStatus", "WarmStartResult"]


class FitStatus(str, Enum):
    """How ``fit`` ended."""

    COMPLETED = "completed"
    PREEMPTED = "preempted"
    INTERRUPTED = "interrupted"
    EARLY_STOPPED = "early_stopped"


@dataclass
class FitResult:
    """Outcome of ``GenericTrainer.fit``.

    Attributes:
        status: how the run ended.
        global_step: optimizer steps taken so far (over all resumes).
        epoch: number of completed epochs.
        metrics: the last logged value of every metric key.
        checkpoint_path: newest checkpoint written or loaded, or None.
        data_fingerprint: rolling hash of every (loader, sample indices) this run consumed.
    """

    status: FitStatus
    global_step: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_path: Path | None = None
    data_fingerprint: str | None = None


@dataclass
class WarmStartResult:
    """Weights a warm-start loader hands to the trainer (no optimizer or loop state).

    Attributes:
        model_state_dict: a state dict for the trainer's model.
        strict: whether every key must match (``Module.load_state_dict(strict=...)``).
    """

    model_state_dict: dict[str, Any]
    strict: bool = True
