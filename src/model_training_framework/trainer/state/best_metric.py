"""The best value of the monitored metric, which decides when ``best.ckpt`` moves."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from model_training_framework.errors import CheckpointError

__all__ = ["BestMetric"]

logger = logging.getLogger(__name__)

# state_dict keys (kept from the checkpoint manager's own state, where they are stored)
_BEST_VALUE = "best_value"
_MONITOR_METRIC = "monitor_metric"
_MONITOR_MODE = "monitor_mode"


class BestMetric:
    """Tracks the best value of ``metric`` seen at saves (lowest for ``"min"``, else highest).

    Args:
        metric: ``checkpoint.monitor_metric``; None tracks nothing.
        mode: ``checkpoint.monitor_mode``: ``"min"`` or ``"max"`` (or an Enum of these).
    """

    def __init__(self, metric: str | None, mode: Any) -> None:
        self.metric = metric
        self.mode = str(getattr(mode, "value", mode)).lower()
        self.value: float | None = None

    def update(self, metrics: Mapping[str, float]) -> bool:
        """Take the metric's value from ``metrics``; True when it is a new best (NaN never is)."""
        if self.metric is None or self.metric not in metrics:
            return False
        value = float(metrics[self.metric])
        if math.isnan(value):
            return False
        best = self.value
        improved = best is None or (value < best if self.mode == "min" else value > best)
        if improved:
            self.value = value
        return improved

    def state_dict(self) -> dict[str, Any]:
        """The best value and what it was measured on."""
        return {_BEST_VALUE: self.value, _MONITOR_METRIC: self.metric, _MONITOR_MODE: self.mode}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; a best value recorded for another metric or mode
        is dropped, with a warning.

        Raises:
            CheckpointError: A key is missing (corrupt or foreign checkpoint).
        """
        missing = [k for k in (_BEST_VALUE, _MONITOR_METRIC, _MONITOR_MODE) if k not in state]
        if missing:
            raise CheckpointError(
                f"checkpoint manager state lacks key(s) {missing} (has {sorted(state)}); the "
                "checkpoint is corrupt or was not written by this framework"
            )
        same_monitor = (state[_MONITOR_METRIC], state[_MONITOR_MODE]) == (self.metric, self.mode)
        if not same_monitor and state[_BEST_VALUE] is not None:
            logger.warning(
                "checkpoint tracked best %s (%s) but the config monitors %s (%s); best.ckpt "
                "tracking starts over",
                state[_MONITOR_METRIC],
                state[_MONITOR_MODE],
                self.metric,
                self.mode,
            )
        self.value = state[_BEST_VALUE] if same_monitor else None
