"""Weights & Biases logger (optional extra ``wandb``).

W&B's own files (including offline runs, ``wandb/offline-run-*``) go under the run directory.
Offline mode: ``logging.wandb_mode: offline`` or ``WANDB_MODE=offline`` in the environment
(``wandb_mode: None`` leaves the choice to the environment); sync later with ``wandb sync``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_training_framework.trainer.loggers.base import BaseLogger, import_optional, to_hwc_uint8

__all__ = ["WANDB_MODE_ENV", "WandbLogger"]

WANDB_MODE_ENV = "WANDB_MODE"


class WandbLogger(BaseLogger):
    """Logs to a W&B run that lives as long as this logger.

    Args:
        run_dir: The run directory; W&B writes its ``wandb/`` folder inside it. Its name is the
            W&B run name.
        project: W&B project (``None``: W&B's default, e.g. ``WANDB_PROJECT``).
        entity: W&B user or team (``None``: W&B's default).
        mode: ``"online"``, ``"offline"``, ``"disabled"`` or ``None`` (the ``WANDB_MODE``
            environment variable at construction time, else W&B's default, online).

    Raises:
        ImportError: wandb is not installed (the message names the extra to install).

    Example:
        >>> logger = WandbLogger(run_dir, project="demo", mode="offline")  # doctest: +SKIP
        >>> logger.log_scalars({"train/loss": 0.43}, step=120)             # doctest: +SKIP
        >>> logger.close()                                                  # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
    ) -> None:
        self._wandb = import_optional("wandb", extra="wandb", purpose="Weights & Biases logging")
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        init_kwargs: dict[str, Any] = {
            "project": project,
            "entity": entity,
            "dir": str(run_dir),
            "name": run_dir.name,
        }
        # Read WANDB_MODE now rather than leaving it to wandb, which caches its environment
        # settings process-wide on first use and would miss a change made after that.
        mode = mode if mode is not None else os.environ.get(WANDB_MODE_ENV)
        if mode is not None:
            init_kwargs["mode"] = mode
        self._run = self._wandb.init(**init_kwargs)
        self._is_closed = False

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Log ``metrics`` at ``step`` (W&B needs non-decreasing steps within one run)."""
        self._run.log({key: float(value) for key, value in metrics.items()}, step=int(step))

    def log_text(self, key: str, text: str, step: int) -> None:
        """Log ``text`` as preformatted HTML, so line breaks and spacing survive."""
        document = f"<pre>{html.escape(text)}</pre>"
        self._run.log({key: self._wandb.Html(document)}, step=int(step))

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Log an image (see ``to_hwc_uint8`` for accepted layouts)."""
        self._run.log({key: self._wandb.Image(to_hwc_uint8(image))}, step=int(step))

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Log a matplotlib figure as a rendered image (the figure stays open)."""
        self._run.log({key: self._wandb.Image(figure)}, step=int(step))

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Merge ``params`` into the run's config (later values replace earlier ones)."""
        self._run.config.update(dict(params), allow_val_change=True)

    def close(self) -> None:
        """Finish the W&B run; calling it again does nothing."""
        if not self._is_closed:
            self._is_closed = True
            self._run.finish()
