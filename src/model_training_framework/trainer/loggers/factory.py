"""``build_logger``: the one place that turns ``LoggingConfig`` into a logger.

Rank 0 gets a :class:`CompositeLogger` of the JSONL logger (always) plus the configured backends;
every other rank gets a :class:`NullLogger`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.loggers.base import Logger, NullLogger
from model_training_framework.trainer.loggers.composite import CompositeLogger
from model_training_framework.trainer.loggers.console import ConsoleLogger
from model_training_framework.trainer.loggers.jsonl import JsonlLogger

if TYPE_CHECKING:
    from model_training_framework.trainer.config import LoggingConfig

__all__ = ["BACKEND_NAMES", "COMPOSITE", "build_logger", "writes_to_console"]

COMPOSITE = "composite"


def _build_console(config: LoggingConfig, run_dir: Path, start_step: int | None) -> Logger:
    return ConsoleLogger()


def _build_tensorboard(config: LoggingConfig, run_dir: Path, start_step: int | None) -> Logger:
    from model_training_framework.trainer.loggers.tensorboard import (
        TENSORBOARD_SUBDIR,
        TensorBoardLogger,
    )

    log_dir = (
        Path(config.tensorboard_dir) if config.tensorboard_dir else run_dir / TENSORBOARD_SUBDIR
    )
    return TensorBoardLogger(log_dir, purge_after_step=start_step)


def _build_wandb(config: LoggingConfig, run_dir: Path, start_step: int | None) -> Logger:
    from model_training_framework.trainer.loggers.wandb import WandbLogger

    return WandbLogger(
        run_dir,
        project=config.wandb_project,
        entity=config.wandb_entity,
        mode=_plain(config.wandb_mode),
    )


_BACKENDS: dict[str, Callable[[Any, Path, int | None], Logger]] = {
    "console": _build_console,
    "tensorboard": _build_tensorboard,
    "wandb": _build_wandb,
}
BACKEND_NAMES = tuple(_BACKENDS)


def build_logger(
    config: LoggingConfig,
    run_dir: Path,
    *,
    is_rank_zero: bool,
    hparams: Mapping[str, object] | None = None,
    start_step: int | None = None,
) -> Logger:
    """Build the run's logger from its logging config.

    Args:
        config: The ``logging`` section (``logger_type``, ``composite_loggers``,
            ``tensorboard_dir``, ``wandb_project``, ``wandb_entity``, ``wandb_mode``).
        run_dir: The run directory (``metrics.jsonl``, ``tensorboard/``, ``wandb/`` go there).
        is_rank_zero: Only rank 0 logs; other ranks get a logger that does nothing.
        hparams: Hyperparameters recorded once by every backend (e.g. the config's dict).
        start_step: The global step training starts (or resumes) at. Records that an earlier
            attempt logged after it are dropped from ``metrics.jsonl`` and TensorBoard, so a
            resumed run does not repeat steps. None keeps everything (appends).

    Returns:
        A :class:`CompositeLogger` whose first member is the JSONL logger, or a
        :class:`NullLogger` when ``is_rank_zero`` is false.

    Raises:
        ConfigError: ``logger_type`` or a ``composite_loggers`` entry is unknown, or composite
            has no members.
        ImportError: A configured backend's optional package is missing (names the extra).

    Example:
        >>> logger = build_logger(config.logging, run_dir, is_rank_zero=True)  # doctest: +SKIP
        >>> logger.log_scalars({"train/loss": 0.43}, step=120)                 # doctest: +SKIP
    """
    if not is_rank_zero:
        return NullLogger()
    names = _backend_names(config)
    run_dir = Path(run_dir)
    members: list[Logger] = [JsonlLogger(run_dir, keep_through_step=start_step)]
    try:
        for name in names:
            members.append(_BACKENDS[name](config, run_dir, start_step))
        logger = CompositeLogger(members)
        if hparams is not None:
            logger.log_hyperparams(hparams)
    except BaseException:
        # Do not leak open files or a live W&B run when a later backend fails to start.
        CompositeLogger(members).close()
        raise
    return logger


def writes_to_console(config: LoggingConfig) -> bool:
    """Whether the configured backends include the console logger."""
    return "console" in _backend_names(config)


def _backend_names(config: LoggingConfig) -> list[str]:
    logger_type = _plain(config.logger_type)
    if logger_type != COMPOSITE:
        return [_checked(logger_type, "logging.logger_type")]
    members = [_plain(name) for name in config.composite_loggers or []]
    if not members:
        raise ConfigError(
            f"logging.logger_type is '{COMPOSITE}' but logging.composite_loggers is empty; "
            f"list the members, e.g. composite_loggers: [console, tensorboard] "
            f"(choices: {', '.join(BACKEND_NAMES)})"
        )
    return [_checked(name, f"logging.composite_loggers[{idx}]") for idx, name in enumerate(members)]


def _checked(name: str, field_path: str) -> str:
    if name not in _BACKENDS:
        choices = ", ".join(
            [*BACKEND_NAMES, COMPOSITE] if field_path.endswith("type") else BACKEND_NAMES
        )
        raise ConfigError(f"{field_path}: unknown logger '{name}'; choose one of {choices}")
    return name


def _plain(value: Any) -> Any:
    """Enum members become their value; strings and None pass through."""
    return value.value if isinstance(value, Enum) else value
