"""Early stopping on any logged metric, with state saved in checkpoints, and the check that
every monitored metric (early stopping, ``best.ckpt``) is one the run produces."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from model_training_framework.errors import CheckpointError, ConfigError

__all__ = ["EarlyStopping", "MonitoredMetricsCheck"]


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


class MonitoredMetricsCheck:
    """Checks, at the first evaluation that should produce it, that each monitored metric is
    produced.

    A typo such as ``val/los`` (or a custom aggregation that returns no ``loss``) would
    otherwise silently switch early stopping or ``best.ckpt`` off, and so would Lightning's
    spelling ``val_loss`` (checked when ``val/loss`` is produced). A ``val/`` metric is checked
    at the first validation pass (at the first logging of training metrics when the run has no
    validation loaders, which can never produce it); a ``train/`` metric at the first logging of
    training metrics (``train/loss``). Other names (metrics that hooks log) are not checked.
    When training metrics are not logged at all (``log_loss_every_n_steps`` None), a metric
    that waits for them can never be produced: that is an error at once.

    Args:
        monitored: config field path -> metric name it monitors (None: that feature is off).
        has_validation: whether the run has validation loaders.
        logs_train_metrics: whether training metrics are logged (``log_loss_every_n_steps``).

    Raises:
        ConfigError: a monitored metric waits for training metrics that are not logged.

    Example:
        >>> check = MonitoredMetricsCheck({"early_stopping_metric": "val/loss"}, has_validation=True)
        >>> check.check({"train/loss": 1.0}, {"train/loss": 1.0})  # not an evaluation: no check
        >>> check.check({"val/loss": 0.5}, {"train/loss": 1.0, "val/loss": 0.5})
    """

    def __init__(
        self,
        monitored: Mapping[str, str | None],
        *,
        has_validation: bool,
        logs_train_metrics: bool = True,
    ) -> None:
        val_trigger = _VAL_PREFIX if has_validation else _TRAIN_LOSS
        # field -> (name, the evaluation that must produce it, its 'val/' spelling when the
        # name is written 'val_loss' as in Lightning: checked only when that spelling is).
        self._pending: dict[str, tuple[str, str, str | None]] = {}
        for field, name in monitored.items():
            slashed = None if name is None else _slashed(name)
            checked = slashed or name
            if checked is None or not checked.startswith((_VAL_PREFIX, _TRAIN_PREFIX)):
                continue
            trigger = val_trigger if checked.startswith(_VAL_PREFIX) else _TRAIN_LOSS
            self._pending[field] = (name, trigger, slashed)
            if not logs_train_metrics and trigger == _TRAIN_LOSS and slashed is None:
                raise _never_logged(field, name, has_validation)

    def check(self, logged_now: Mapping[str, float], logged_so_far: Mapping[str, float]) -> None:
        """Called at every logging boundary; checks the metrics whose evaluation this is.

        Args:
            logged_now: the metrics logged at this boundary.
            logged_so_far: every metric logged so far (including ``logged_now``).

        Raises:
            ConfigError: a monitored metric is not among ``logged_so_far``; names the metrics
                that were produced and the closest match.
        """
        if not self._pending:
            return
        for field, (name, trigger, slashed) in list(self._pending.items()):
            if not any(key.startswith(trigger) for key in logged_now):
                continue
            del self._pending[field]
            # 'val_f1' that a hook logs later is no typo; 'val_loss' beside 'val/loss' is.
            if name not in logged_so_far and (slashed is None or slashed in logged_so_far):
                raise _not_produced(field, name, logged_so_far, meant=slashed)


_VAL_PREFIX = "val/"
_TRAIN_PREFIX = "train/"
_TRAIN_LOSS = "train/loss"


def _never_logged(field: str, name: str, has_validation: bool) -> ConfigError:
    why = "the run logs no training metrics"
    if name.startswith(_VAL_PREFIX) and not has_validation:
        why = "the run has no val_loaders and logs no training metrics"
    return ConfigError(
        f"{field} is {name!r}, but log_loss_every_n_steps is None, so {why}: {name!r} is "
        "never produced. Set log_loss_every_n_steps (e.g. 50), or monitor a 'val/' metric of "
        "validation loaders"
    )


def _slashed(name: str) -> str | None:
    """``val_loss`` -> ``val/loss`` (Lightning's spelling of our metric keys); else None."""
    for prefix in ("val_", "train_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return f"{prefix[:-1]}/{name[len(prefix) :]}"
    return None


def _not_produced(
    field: str, name: str, logged: Mapping[str, float], meant: str | None = None
) -> ConfigError:
    produced = sorted(k for k in logged if not k.startswith("profile/"))
    close = [meant] if meant else difflib.get_close_matches(name, produced, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"{field} is {name!r}, but the first evaluation produced no such metric{hint}; "
        f"metrics produced: {', '.join(produced)}. Set {field} to one of them (a custom "
        "validation.aggregation_fn must return that key without 'val/')"
    )
