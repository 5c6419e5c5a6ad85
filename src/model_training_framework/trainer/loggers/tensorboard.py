"""TensorBoard logger (optional extra ``tensorboard``), on ``torch.utils.tensorboard``.

Event files go to ``logging.tensorboard_dir`` or, by default, ``<run_dir>/tensorboard``. A resumed
run adds a new event file to the same directory; TensorBoard merges them. It is opened with
``purge_step`` one past the checkpoint's step, so TensorBoard hides what the interrupted attempt
logged after that step instead of showing those steps twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_training_framework.trainer.loggers.base import (
    BaseLogger,
    flatten_params,
    import_optional,
    to_hwc_uint8,
)

__all__ = ["TENSORBOARD_SUBDIR", "TensorBoardLogger"]

TENSORBOARD_SUBDIR = "tensorboard"
_HPARAM_TYPES = (bool, int, float, str)


class TensorBoardLogger(BaseLogger):
    """Writes scalars, text, images, figures and hyperparameters to TensorBoard event files.

    Args:
        log_dir: Directory for the event files; created if missing.
        flush_secs: How often the writer flushes pending events to disk, in seconds.
        purge_after_step: Hide events that earlier writers logged at steps after this one
            (TensorBoard's ``purge_step``); None hides nothing.

    Raises:
        ImportError: tensorboard is not installed (the message names the extra to install).

    Example:
        >>> tb = TensorBoardLogger(run_dir / "tensorboard")    # doctest: +SKIP
        >>> tb.log_scalars({"train/loss": 0.43}, step=120)     # doctest: +SKIP
        >>> tb.close()                                          # doctest: +SKIP
    """

    def __init__(
        self, log_dir: Path, *, flush_secs: float = 30.0, purge_after_step: int | None = None
    ) -> None:
        writer_module = import_optional(
            "torch.utils.tensorboard", extra="tensorboard", purpose="TensorBoard logging"
        )
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = writer_module.SummaryWriter(
            log_dir=str(self.log_dir),
            flush_secs=flush_secs,
            purge_step=None if purge_after_step is None else purge_after_step + 1,
        )
        self._is_closed = False

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Add one scalar per key at ``step``."""
        for key, value in metrics.items():
            self._writer.add_scalar(key, float(value), global_step=int(step))

    def log_text(self, key: str, text: str, step: int) -> None:
        """Add ``text`` (shown as markdown by TensorBoard) under ``key``."""
        self._writer.add_text(key, text, global_step=int(step))

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Add an image (see ``to_hwc_uint8`` for accepted layouts)."""
        self._writer.add_image(key, to_hwc_uint8(image), global_step=int(step), dataformats="HWC")

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Add a rendered matplotlib figure; the figure stays open (the caller owns it)."""
        self._writer.add_figure(key, figure, global_step=int(step), close=False)

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Record hyperparameters for TensorBoard's HParams tab, in this run's own directory.

        Nested mappings are flattened to ``a/b`` keys; values other than bool/int/float/str
        (lists, None, enums, paths) are recorded as their ``str``.
        """
        summary_module = import_optional(
            "torch.utils.tensorboard.summary", extra="tensorboard", purpose="TensorBoard logging"
        )
        flat = {
            key: value if isinstance(value, _HPARAM_TYPES) else str(value)
            for key, value in flatten_params(params).items()
        }
        # SummaryWriter.add_hparams would write into a new timestamped sub-run; we want the
        # hyperparameters attached to this run, so the summaries go to our own file writer.
        for summary in summary_module.hparams(flat, {}):
            self._writer.file_writer.add_summary(summary)

    def close(self) -> None:
        """Flush and close the event file; calling it again does nothing."""
        if not self._is_closed:
            self._is_closed = True
            self._writer.close()
