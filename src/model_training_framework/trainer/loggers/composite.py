"""Composite logger: fans every call out to several loggers, in order."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from model_training_framework.trainer.loggers.base import BaseLogger, Logger

__all__ = ["CompositeLogger"]

_log = logging.getLogger(__name__)


class CompositeLogger(BaseLogger):
    """Calls each member logger in turn.

    A member that raises while logging stops the call (the error propagates; it is never
    hidden). ``close`` closes every member even when one fails, then re-raises the first error.

    Args:
        loggers: The members, called in this order.

    Example:
        >>> logger = CompositeLogger([JsonlLogger(run_dir), ConsoleLogger()])  # doctest: +SKIP
        >>> logger.log_scalars({"train/loss": 0.43}, step=120)                 # doctest: +SKIP
    """

    def __init__(self, loggers: Sequence[Logger]) -> None:
        self.loggers: tuple[Logger, ...] = tuple(loggers)

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Forward to every member."""
        for logger in self.loggers:
            logger.log_scalars(metrics, step)

    def log_text(self, key: str, text: str, step: int) -> None:
        """Forward to every member."""
        for logger in self.loggers:
            logger.log_text(key, text, step)

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Forward to every member."""
        for logger in self.loggers:
            logger.log_image(key, image, step)

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Forward to every member."""
        for logger in self.loggers:
            logger.log_figure(key, figure, step)

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Forward to every member."""
        for logger in self.loggers:
            logger.log_hyperparams(params)

    def close(self) -> None:
        """Close every member; if any fail, re-raise the first failure after closing the rest.

        Raises:
            Exception: The first exception a member's ``close`` raised (later ones are logged).
        """
        first_error: BaseException | None = None
        for logger in self.loggers:
            try:
                logger.close()
            except Exception as err:
                if first_error is None:
                    first_error = err
                else:
                    _log.error("closing %s also failed: %r", type(logger).__name__, err)
        if first_error is not None:
            raise first_error
