"""Progress display: a live tqdm bar on a terminal, plain periodic lines elsewhere.

The view is chosen once, when the display is built: a live bar when the stream is a TTY, plain
lines at most every ``min_interval_s`` seconds when it is not (CI and SLURM logs stay readable),
nothing when disabled (``logging.progress_bar: false`` or a rank other than 0). The trainer calls
``update`` at log intervals only, and each call costs a few microseconds; when an epoch's batches
are done it shows the epoch's end and closes the display, so that the epoch's last progress line
comes before the lines of its validation and checkpoint.

The display counts the *batches* of the current epoch (``batch 120/1000``); log lines name the
global optimizer *step* (``epoch 1 step 1120``), a different number.

When the stream's reader goes away (a broken pipe), the display shows nothing more for the rest of
the run and training goes on (see the console logger).

Live bar::

    epoch 1:  12%|██▍          | 120/1000 [00:15<01:50, 8.0batch/s, loss=0.431, a=0.41, b=0.45, 812 samples/s]

Plain line::

    epoch 1 batch 120/1000 (12%) | loss=0.431, a=0.41, b=0.45, 812 samples/s | ETA 0:01:50
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TextIO

from tqdm import tqdm

from model_training_framework.trainer.loggers.console import (
    THROUGHPUT_KEY,
    format_value,
    note_console_off,
)

if TYPE_CHECKING:
    from model_training_framework.trainer.config import LoggingConfig

__all__ = ["ProgressDisplay", "build_progress_display", "format_eta", "format_progress_postfix"]

_TRAIN_LOSS_KEY = "train/loss"


class _View(Protocol):
    def start(self, total_batches: int | None, epoch: int, initial_batch: int) -> None: ...

    def update(self, batch: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class ProgressDisplay:
    """Shows training progress for one epoch at a time, counted in batches of the epoch.

    Args:
        enabled: ``False`` shows nothing at all.
        stream: Where to draw; ``None`` means ``sys.stderr``.
        min_interval_s: Plain-line mode only: least number of seconds between two lines.
        clock: Monotonic clock in seconds (tests inject a fake one).

    Example:
        >>> progress = ProgressDisplay()                      # doctest: +SKIP
        >>> progress.start(total_batches=1000, epoch=1)       # doctest: +SKIP
        >>> progress.update(120, {"train/loss": 0.43})        # doctest: +SKIP
        >>> progress.close()                                  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        min_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        stream = stream if stream is not None else sys.stderr
        self._view: _View
        if not enabled:
            self._view = _NoView()
        elif stream.isatty():
            self._view = _LiveBar(stream)
        else:
            self._view = _PlainLines(stream, min_interval_s, clock)

    @property
    def is_live(self) -> bool:
        """Whether a live bar (rather than plain lines or nothing) is drawn."""
        return isinstance(self._view, _LiveBar)

    def start(self, total_batches: int | None, epoch: int, *, initial_batch: int = 0) -> None:
        """Begin showing an epoch; ends the previous epoch's display first.

        Args:
            total_batches: Batches in the epoch (``None`` when unknown: no ETA).
            epoch: Epoch number shown in the description.
            initial_batch: Batches already done (a resumed run mid-epoch).
        """
        try:
            self._view.close()
            self._view.start(total_batches, epoch, initial_batch)
        except BrokenPipeError:
            self._switch_off()

    def update(self, batch: int, metrics: Mapping[str, float] | None = None) -> None:
        """Move to ``batch`` batches done in the epoch and show the latest metrics."""
        try:
            self._view.update(batch, metrics or {})
        except BrokenPipeError:
            self._switch_off()

    def close(self) -> None:
        """Finish the current display; calling it again does nothing."""
        try:
            self._view.close()
        except BrokenPipeError:
            self._switch_off()

    def _switch_off(self) -> None:
        """The stream's reader went away: show nothing more, training goes on."""
        self._view = _NoView()
        note_console_off()


def build_progress_display(
    config: LoggingConfig, *, is_rank_zero: bool, stream: TextIO | None = None
) -> ProgressDisplay:
    """Build the display the logging config asks for (nothing on ranks other than 0).

    Args:
        config: The ``logging`` section; ``progress_bar`` switches the display on or off.
        is_rank_zero: Only rank 0 shows progress.
        stream: Where to draw; ``None`` means ``sys.stderr``.

    Returns:
        A :class:`ProgressDisplay`.
    """
    return ProgressDisplay(enabled=bool(config.progress_bar) and is_rank_zero, stream=stream)


def format_progress_postfix(metrics: Mapping[str, float]) -> str:
    """Summarise metrics for the bar: overall loss, per-loader losses, throughput.

    Args:
        metrics: The latest logged metrics.

    Returns:
        e.g. ``"loss=0.431, a=0.41, b=0.45, 812 samples/s"`` (empty when none is present).
    """
    fields = []
    if _TRAIN_LOSS_KEY in metrics:
        fields.append(f"loss={format_value(metrics[_TRAIN_LOSS_KEY])}")
    for key in sorted(metrics):
        parts = key.split("/")
        if (
            len(parts) == 3
            and parts[0] == "train"
            and parts[1].startswith("dl_")
            and parts[2] == "loss"
        ):
            fields.append(f"{parts[1][3:]}={format_value(metrics[key])}")
    if THROUGHPUT_KEY in metrics:
        fields.append(f"{float(metrics[THROUGHPUT_KEY]):.0f} samples/s")
    return ", ".join(fields)


class _NoView:
    def start(self, total_batches: int | None, epoch: int, initial_batch: int) -> None:
        pass

    def update(self, batch: int, metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class _LiveBar:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: tqdm | None = None

    def start(self, total_batches: int | None, epoch: int, initial_batch: int) -> None:
        self._bar = tqdm(
            total=total_batches,
            initial=initial_batch,
            desc=f"epoch {epoch}",
            unit="batch",
            file=self._stream,
            dynamic_ncols=True,
            leave=True,
        )

    def update(self, batch: int, metrics: Mapping[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(format_progress_postfix(metrics), refresh=False)
            self._bar.update(batch - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _PlainLines:
    def __init__(self, stream: TextIO, min_interval_s: float, clock: Callable[[], float]) -> None:
        self._stream = stream
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._epoch = 0
        self._total: int | None = None
        self._first_batch = 0
        self._started_at = 0.0
        self._last_line_at: float | None = None
        self._shown_batch: int | None = None  # the position of the last line shown
        # (batch, metrics, time) of the newest update not shown yet; its line is built only
        # when it is printed (most updates are replaced before then)
        self._pending: tuple[int, dict[str, float], float] | None = None
        self._is_open = False

    def start(self, total_batches: int | None, epoch: int, initial_batch: int) -> None:
        self._epoch, self._total, self._first_batch = epoch, total_batches, initial_batch
        self._started_at = self._clock()
        self._last_line_at = None
        self._shown_batch = None
        self._pending = None
        self._is_open = True

    def update(self, batch: int, metrics: Mapping[str, float]) -> None:
        if not self._is_open or batch == self._shown_batch:  # no progress since the last line
            return
        now = self._clock()
        self._pending = (batch, dict(metrics), now)
        if self._last_line_at is None or now - self._last_line_at >= self._min_interval_s:
            self._emit(now)

    def close(self) -> None:
        # The last state reached is always shown, even when the interval has not elapsed.
        if self._is_open and self._pending is not None:
            self._emit(self._clock())
        self._is_open = False

    def _emit(self, now: float) -> None:
        assert self._pending is not None
        batch, metrics, updated_at = self._pending
        line = self._line(batch, format_progress_postfix(metrics), updated_at)
        tqdm.write(line, file=self._stream)
        self._last_line_at, self._pending, self._shown_batch = now, None, batch

    def _line(self, batch: int, postfix: str, now: float) -> str:
        fields = [f"epoch {self._epoch} batch {batch}"]
        if self._total:
            fields[0] += f"/{self._total} ({100.0 * batch / self._total:.0f}%)"
        if postfix:
            fields.append(postfix)
        done = batch - self._first_batch
        if self._total and done > 0:
            remaining_s = (now - self._started_at) / done * (self._total - batch)
            fields.append(f"ETA {format_eta(remaining_s)}")
        return " | ".join(fields)


def format_eta(remaining_s: float) -> str:
    """The time left as ``H:MM:SS``; under a second (but not done) as ``<1s``.

    Whole seconds alone showed ``0:00:00`` all through an epoch shorter than a second (the
    demo's), as if it were over.

    Example:
        >>> format_eta(110.2), format_eta(0.04), format_eta(0.0)
        ('0:01:50', '<1s', '0:00:00')
    """
    if 0.0 < remaining_s < 1.0:
        return "<1s"
    return str(datetime.timedelta(seconds=round(max(remaining_s, 0.0))))
