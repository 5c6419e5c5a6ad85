"""Early stopping on any logged metric, with state saved in checkpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations.

    Args:
        patience: evaluations without improvement before stopping; None disables.
        metric: key of a logged metric (e.g. ``"val/loss"``).
        mode: ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement.
    """

    def __init__(self, patience: int | None, metric: str, mode: str, min_delta: float) -> None:
        self.patience = patience
        self.metric = metric
        self.sign = 1.0 if mode == "min" else -1.0
        self.min_delta = min_delta
        self.best: float | None = None
        self.bad_evaluations = 0

    @property
    def enabled(self) -> bool:
        return self.patience is not None

    def update(self, metrics: Mapping[str, float]) -> bool:
        """Feed newly logged metrics; True when training should stop."""
        if self.patience is None or self.metric not in metrics:
            return False
        value = float(metrics[self.metric])
        if self.best is None or (
            math.isfinite(value) and self.sign * (self.best - value) > self.min_delta
        ):
            self.best, self.bad_evaluations = value, 0
        else:
            self.bad_evaluations += 1
        return self.bad_evaluations >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_evaluations": self.bad_evaluations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self.best, self.bad_evaluations = state["best"], int(state["bad_evaluations"])
        except KeyError as err:
            raise CheckpointError(f"checkpoint early-stopping state lacks {err}") from err
