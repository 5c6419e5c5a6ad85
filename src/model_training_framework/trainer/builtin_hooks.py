"""Ready-made hooks users compose, as the reference framework had them: thin layers over what
the trainer already does.

* :class:`EarlyStoppingHook`, :class:`ModelCheckpointHook`, :class:`RuntimeProfilingHook` (and
  the interval of :class:`LoggingHook`) switch on the trainer's own early stopping, checkpointing and profiling (in
  :meth:`~model_training_framework.trainer.TrainerHooks.configure`, when the hook is added), so
  their state is checkpointed and agreed across ranks like the config's. A setting given both
  in the config and to the hook with different values is a ``ConfigError``.
* :class:`LoggingHook` sets the step-metric interval and writes progress lines with Python
  logging; :class:`GradientMonitorHook` logs gradient norms as metrics every
  ``log_every_n_steps`` optimizer steps.

Example:
    >>> trainer.add_hook(EarlyStoppingHook(monitor="val/loss", patience=3))   # doctest: +SKIP
    >>> trainer.add_hook(GradientMonitorHook(log_every_n_steps=100))           # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.hooks import TrainerHooks

__all__ = [
    "EarlyStoppingHook",
    "GradientMonitorHook",
    "LoggingHook",
    "ModelCheckpointHook",
    "RuntimeProfilingHook",
]

_Mode = Literal["min", "max"]


def _check_interval(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (optimizer steps), got {value!r}")
    return value


def _set(hook: TrainerHooks, section: Any, path: str, settings: dict[str, Any]) -> None:
    """Set each field of ``section`` given (not None) in ``settings``.

    A field the config holds at its default is not a setting of the user's: a config file
    written out by ``to_yaml`` (``mtf train``, sweep jobs) lists every default.

    Raises:
        ConfigError: the config already sets the field to another, non-default value, or the
            value is invalid for the field (the message names the field path).
    """
    given = {field: value for field, value in settings.items() if value is not None}
    fields = type(section).model_fields
    for field, value in given.items():  # every conflict before any change
        current = getattr(section, field)
        default = fields[field].get_default(call_default_factory=True)
        if field in section.model_fields_set and current not in (value, default):
            raise ConfigError(
                f"{type(hook).__name__} sets {path}{field}={value!r} but the config already has "
                f"{current!r}; set it in one place (the hook or the config)"
            )
    for field, value in given.items():
        setattr(section, field, value)


class EarlyStoppingHook(TrainerHooks):
    """Stop training when ``monitor`` has not improved for ``patience`` evaluations.

    Sets ``early_stopping_metric``, ``early_stopping_patience``, ``early_stopping_mode`` and
    ``early_stopping_min_delta`` of the trainer's config; the trainer does the rest (and saves
    the early-stopping state in checkpoints).

    Args:
        monitor: logged metric key, e.g. ``"val/loss"``.
        patience: evaluations without improvement before stopping (>= 1).
        mode: ``"min"`` (lower is better) or ``"max"``.
        min_delta: smallest change that counts as an improvement (>= 0).
    """

    def __init__(
        self,
        monitor: str = "val/loss",
        patience: int = 3,
        mode: _Mode = "min",
        min_delta: float = 0.0,
    ) -> None:
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta

    def configure(self, config: Any) -> None:
        _set(
            self,
            config,
            "",
            {
                "early_stopping_metric": self.monitor,
                "early_stopping_patience": self.patience,
                "early_stopping_mode": self.mode,
                "early_stopping_min_delta": self.min_delta,
            },
        )


class ModelCheckpointHook(TrainerHooks):
    """Checkpoint on a schedule and keep ``best.ckpt`` for ``monitor``.

    Sets the given fields of the config's ``checkpoint`` section (None leaves a field alone);
    the trainer's checkpoint manager writes the files (atomic, rotated, resumable).

    Args:
        monitor: metric key that ``best.ckpt`` tracks, e.g. ``"val/loss"``.
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        save_every_n_steps: save every N optimizer steps.
        save_every_n_epochs: save at the end of every N epochs.
        max_checkpoints: newest periodic checkpoints kept.
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: _Mode | None = None,
        save_every_n_steps: int | None = None,
        save_every_n_epochs: int | None = None,
        max_checkpoints: int | None = None,
    ) -> None:
        self.settings = {
            "monitor_metric": monitor,
            "monitor_mode": mode,
            "save_every_n_steps": save_every_n_steps,
            "save_every_n_epochs": save_every_n_epochs,
            "max_checkpoints": max_checkpoints,
        }

    def configure(self, config: Any) -> None:
        _set(self, config.checkpoint, "checkpoint.", self.settings)


class RuntimeProfilingHook(TrainerHooks):
    """Log per-loader timings (data, forward, backward, optimizer) every N steps.

    Switches on the trainer's profiler (``profile_training``) and sets
    ``logging.log_scalars_every_n_steps``; the metrics are ``profile/train/dl_<name>/...``.

    Args:
        log_every_n_steps: logging interval in optimizer steps (>= 1).
        sync_cuda: synchronise CUDA around timed sections for exact GPU times (slower).
    """

    def __init__(self, log_every_n_steps: int = 50, sync_cuda: bool = False) -> None:
        self.log_every_n_steps = _check_interval(log_every_n_steps, "log_every_n_steps")
        self.sync_cuda = sync_cuda

    def configure(self, config: Any) -> None:
        _set(self, config, "", {"profile_training": True})
        _set(
            self, config.logging, "logging.", {"log_scalars_every_n_steps": self.log_every_n_steps}
        )
        if self.sync_cuda:
            _set(self, config.performance, "performance.", {"sync_cuda_for_profiling": True})


class LoggingHook(TrainerHooks):
    """Log step metrics every N optimizer steps, and progress lines for the start, epoch ends,
    validation results and the end of training.

    The step metrics are the trainer's own (``log_loss_every_n_steps`` is set to
    ``log_every_n_steps``; the configured loggers write them, the console by default); the
    progress lines go to Python logging.

    Args:
        log_every_n_steps: interval of the step metrics in optimizer steps (>= 1).
        level: logging level of the progress lines (default ``logging.INFO``).
        logger_name: the ``logging`` logger to write to.
    """

    def __init__(
        self,
        log_every_n_steps: int = 50,
        level: int = logging.INFO,
        logger_name: str = "model_training_framework.progress",
    ) -> None:
        self.log_every_n_steps = _check_interval(log_every_n_steps, "log_every_n_steps")
        self.level = level
        self.logger = logging.getLogger(logger_name)

    def configure(self, config: Any) -> None:
        _set(self, config, "", {"log_loss_every_n_steps": self.log_every_n_steps})

    def _log(self, trainer: Any, message: str, *args: Any) -> None:
        if trainer.is_rank_zero:
            self.logger.log(self.level, message, *args)

    def on_train_start(self, trainer: Any) -> None:
        self._log(
            trainer,
            "training starts at epoch %d, step %d",
            trainer.current_epoch,
            trainer.global_step,
        )

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict) -> None:
        self._log(
            trainer, "epoch %d done at step %d: %s", epoch, trainer.global_step, _text(metrics)
        )

    def on_validation_end(self, trainer: Any, metrics: dict) -> None:
        self._log(trainer, "validation at step %d: %s", trainer.global_step, _text(metrics))

    def on_train_end(self, trainer: Any, result: Any) -> None:
        self._log(trainer, "training ended: %s at step %d", result.status.value, result.global_step)


def _text(metrics: dict[str, float]) -> str:
    shown = sorted((k, v) for k, v in metrics.items() if not k.startswith("profile/"))
    return ", ".join(f"{key} {value:.4g}" for key, value in shown) or "-"


class GradientMonitorHook(TrainerHooks):
    """Log the gradient norm of each stepped optimizer every N optimizer steps.

    The metric is ``train/grad_norm/opt_<i>``: the ``norm_type`` norm over all parameters of
    optimizer ``i``, of the gradients it applies (after unscaling and clipping). It is computed
    on the device only on logging steps, and read once there.

    Args:
        log_every_n_steps: logging interval in optimizer steps (>= 1).
        norm_type: the p of the p-norm (2.0: Euclidean; ``float("inf")``: max).
    """

    def __init__(self, log_every_n_steps: int = 50, norm_type: float = 2.0) -> None:
        self.log_every_n_steps = _check_interval(log_every_n_steps, "log_every_n_steps")
        self.norm_type = float(norm_type)
        self._norms: dict[int, torch.Tensor] = {}

    def on_before_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        if (trainer.global_step + 1) % self.log_every_n_steps:  # the step about to be taken
            return
        grads = [
            p.grad.detach()
            for group in trainer.optimizers[optimizer_idx].param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if grads:
            norms = torch.stack([torch.linalg.vector_norm(g, self.norm_type) for g in grads])
            self._norms[optimizer_idx] = torch.linalg.vector_norm(norms, self.norm_type)

    def on_after_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        norm = self._norms.pop(optimizer_idx, None)
        if norm is not None:
            trainer.log_metrics({f"train/grad_norm/opt_{optimizer_idx}": float(norm)})
