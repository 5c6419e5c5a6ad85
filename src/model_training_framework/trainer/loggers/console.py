"""Console logger: one concise, stable line per log interval on stderr.

Example line::

    epoch 1 step 120 | train/loss 0.4312 | train/dl_a/loss 0.41 | lr 0.001 | 812 samples/s

Which keys appear, in this order (each group sorted, ``loss`` first):

1. training aggregates ``train/<k>`` (no loader part), then per-loader ``train/dl_<name>/loss``;
2. validation aggregates ``val/<k>``, then per-loader ``val/dl_<name>/loss``;
3. learning rates ``train/lr/opt_<i>`` (shown as ``lr`` when there is one optimizer);
4. throughput ``train/samples_per_sec`` (shown as ``N samples/s``).

Profiling keys (``profile/...``) and other per-loader metrics stay in the metrics file and the
dashboards. On a terminal lines are written with ``tqdm.write`` so that they do not break a live
progress bar; elsewhere they are written directly.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import NamedTuple, TextIO

from tqdm import tqdm

from model_training_framework.trainer.loggers.base import BaseLogger

__all__ = [
    "EPOCH_KEYS",
    "THROUGHPUT_KEY",
    "ConsoleLogger",
    "format_metrics_line",
    "format_value",
    "select_console_metrics",
]

EPOCH_KEYS = ("epoch", "train/epoch")
THROUGHPUT_KEY = "train/samples_per_sec"
_LR_PREFIX = "train/lr/"
_SEPARATOR = " | "


class ConsoleLogger(BaseLogger):
    """Writes one line per ``log_scalars`` call (and one per ``log_text``) to a text stream.

    Args:
        stream: Where lines go; ``None`` means ``sys.stderr`` at the time of each write (so
            pytest's capture and redirections made after construction are honoured).

    Example:
        >>> ConsoleLogger().log_scalars({"train/loss": 0.43, "epoch": 1}, step=120)  # doctest: +SKIP
        epoch 1 step 120 | train/loss 0.43
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # the last stream written to and whether it is a terminal: asked once per stream
        # object (a system call), not at every line
        self._checked_stream: TextIO | None = None
        self._is_tty = False

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Write the console line for ``metrics``; nothing when no shown key is present."""
        shown = _shown_keys(metrics)
        if shown.labels:
            self._emit(_metrics_line(metrics, step, shown))

    def log_text(self, key: str, text: str, step: int) -> None:
        """Write ``step <step> | <key>: <text>``."""
        self._emit(f"step {int(step)}{_SEPARATOR}{key}: {text}")

    def _emit(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        if stream is not self._checked_stream:
            self._checked_stream, self._is_tty = stream, stream.isatty()
        if self._is_tty:  # a live bar may be drawn there: let tqdm move it out of the way
            tqdm.write(line, file=stream)
        else:  # plain lines (CI logs, files): a direct write costs a fraction of tqdm.write
            stream.write(line + "\n")
            stream.flush()


def select_console_metrics(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    """Pick the keys shown on the console, in display order (see ``_select_keys``).

    Returns:
        ``(label, value)`` pairs; labels are the metric keys except ``lr`` for a single learning
        rate. Throughput is not included (``format_metrics_line`` appends it).
    """
    return [(label, metrics[key]) for label, key in _shown_keys(metrics).labels]


class _Shown(NamedTuple):
    """The keys of one key set that the console shows, in display order."""

    labels: list[tuple[str, str]]  # (label, key)
    keys: tuple[str, ...]
    template: str  # the fields as one %-format, for when every shown value is a float


def _shown_keys(metrics: Mapping[str, float]) -> _Shown:
    """The console's selection for the keys of ``metrics``, made once per key set."""
    keys = tuple(metrics)
    shown = _SHOWN.get(keys)
    if shown is None:  # the same keys come back at every log step: select them once
        if len(_SHOWN) >= _MAX_SELECTIONS:
            _SHOWN.clear()
        labels = _select_keys(metrics)
        template = _SEPARATOR.join(f"{label.replace('%', '%%')} %.4g" for label, _ in labels)
        shown = _SHOWN[keys] = _Shown(labels, tuple(key for _, key in labels), template)
    return shown


# key tuple -> the keys shown, in display order
_SHOWN: dict[tuple[str, ...], _Shown] = {}
_MAX_SELECTIONS = 16
_FLOAT_TYPE = frozenset({float})


def _select_keys(metrics: Mapping[str, float]) -> list[tuple[str, str]]:
    """Pick the keys shown on the console, in display order (see the module docstring).

    Args:
        metrics: All metrics of one logging step.

    Returns:
        ``(label, key)`` pairs; labels are the metric keys except ``lr`` for a single learning
        rate. Throughput is not included (``format_metrics_line`` appends it).
    """
    train_aggregates, train_losses, val_aggregates, val_losses, rates = [], [], [], [], []
    for key in metrics:
        parts = key.split("/")
        if key.startswith(_LR_PREFIX):
            rates.append(key)
        elif key == THROUGHPUT_KEY or key in EPOCH_KEYS or len(parts) < 2:
            continue
        elif parts[0] == "train":
            _sort_into(parts, key, train_aggregates, train_losses)
        elif parts[0] == "val":
            _sort_into(parts, key, val_aggregates, val_losses)
    ordered = [
        *sorted(train_aggregates, key=_loss_first),
        *sorted(train_losses),
        *sorted(val_aggregates, key=_loss_first),
        *sorted(val_losses),
    ]
    selected = [(key, key) for key in ordered]
    if len(rates) == 1:
        selected.append(("lr", rates[0]))
    else:
        selected.extend((key, key) for key in sorted(rates))
    return selected


def format_metrics_line(metrics: Mapping[str, float], step: int) -> str:
    """Build the console line ``epoch E step S | key value | ... | N samples/s``.

    Args:
        metrics: All metrics of one logging step; ``epoch`` / ``train/epoch`` set the prefix.
        step: The global step.

    Returns:
        The line, without a trailing newline.
    """
    return _metrics_line(metrics, step, _shown_keys(metrics))


def _metrics_line(metrics: Mapping[str, float], step: int, shown: _Shown) -> str:
    """``format_metrics_line`` with the keys already selected (they are selected once a log)."""
    epoch = next((metrics[key] for key in EPOCH_KEYS if key in metrics), None)
    head = f"step {int(step)}" if epoch is None else f"epoch {int(epoch)} step {int(step)}"
    values = tuple(map(metrics.__getitem__, shown.keys))
    fields = [head]
    if not values:
        pass
    elif _FLOAT_TYPE.issuperset(map(type, values)):  # one format call: what format_value gives
        fields.append(shown.template % values)
    else:
        fields.extend(
            f"{label} {format_value(value)}"
            for (label, _), value in zip(shown.labels, values, strict=True)
        )
    if THROUGHPUT_KEY in metrics:
        fields.append(f"{float(metrics[THROUGHPUT_KEY]):.0f} samples/s")
    return _SEPARATOR.join(fields)


def format_value(value: float) -> str:
    """Format a metric compactly: integers as is, floats with 4 significant digits."""
    if isinstance(value, (bool, int)):
        return str(int(value))
    return f"{float(value):.4g}"


def _sort_into(parts: list[str], key: str, aggregates: list[str], losses: list[str]) -> None:
    if len(parts) == 2:
        aggregates.append(key)
    elif len(parts) == 3 and parts[1].startswith("dl_") and parts[2] == "loss":
        losses.append(key)


def _loss_first(key: str) -> tuple[bool, str]:
    return (not key.endswith("/loss"), key)
