"""Console logger: one concise, stable line per log interval on stderr.

Example line::

    epoch 1 step 120 | train/loss 0.4312 | train/dl_a/loss 0.41 | lr 0.001 | 812 samples/s

Which keys appear, in this order (each group sorted, ``loss`` first):

1. training aggregates ``train/<k>`` (no loader part), then per-loader ``train/dl_<name>/loss``;
2. validation aggregates ``val/<k>``, then per-loader ``val/dl_<name>/loss``;
   more than ``MAX_LOADERS_SHOWN`` (8) loaders' losses of a split are one range field,
   ``train/dl_*/loss 0.25..0.31 (50 loaders)``, so that the line stays readable;
3. learning rates ``train/lr/opt_<i>`` (shown as ``lr`` when there is one optimizer);
4. throughput ``train/samples_per_sec`` (shown as ``N samples/s``).

Profiling keys (``profile/...``) and other per-loader metrics stay in the metrics file and the
dashboards. On a terminal lines are written with ``tqdm.write`` so that they do not break a live
progress bar; elsewhere they are written directly.

Console output is a side channel: when its reader goes away (``mtf demo 2>&1 | head -3``), the
write fails with ``BrokenPipeError``; the logger then stops writing for the rest of the run, notes
it once through Python logging, and training goes on (the metrics file has every value).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import NamedTuple, TextIO

from tqdm import tqdm

from model_training_framework.trainer.loggers.base import BaseLogger

__all__ = [
    "CONSOLE_OFF_NOTICE",
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
CONSOLE_OFF_NOTICE = "console output stopped: its reader went away (broken pipe); training goes on"

logger = logging.getLogger(__name__)


def note_console_off() -> None:
    """Say (through Python logging) that a console stream's reader went away."""
    logger.warning(CONSOLE_OFF_NOTICE)


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
        self._is_off = False  # set when the stream's reader went away (a broken pipe)

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Write the console line for ``metrics``; nothing when no shown key is present."""
        shown = _shown_keys(metrics)
        if shown.labels:
            self._emit(_metrics_line(metrics, step, shown))

    def log_text(self, key: str, text: str, step: int) -> None:
        """Write ``step <step> | <key>: <text>``."""
        self._emit(f"step {int(step)}{_SEPARATOR}{key}: {text}")

    def _emit(self, line: str) -> None:
        if self._is_off:
            return
        stream = self._stream if self._stream is not None else sys.stderr
        if stream is not self._checked_stream:
            self._checked_stream, self._is_tty = stream, stream.isatty()
        try:
            if self._is_tty:  # a live bar may be drawn there: let tqdm move it out of the way
                tqdm.write(line, file=stream)
            else:  # plain lines (CI logs, files): a direct write costs a fraction of tqdm.write
                stream.write(line + "\n")
                stream.flush()
        except BrokenPipeError:  # the reader went away: a side channel, training goes on
            self._is_off = True
            note_console_off()


def select_console_metrics(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    """Pick the keys shown on the console, in display order (see ``_select_fields``).

    Returns:
        ``(label, value)`` pairs; labels are the metric keys except ``lr`` for a single learning
        rate. Throughput is not included (``format_metrics_line`` appends it).
    """
    return [(label, metrics[key]) for label, key in _shown_keys(metrics).labels]


class _Field(NamedTuple):
    """One field of the line: a single key, or a range over many loaders' losses."""

    label: str
    keys: tuple[str, ...]

    @property
    def is_range(self) -> bool:
        return len(self.keys) > 1


class _Shown(NamedTuple):
    """The keys of one key set that the console shows, in display order."""

    labels: list[tuple[str, str]]  # (label, key) of every shown key, ranges' members included
    fields: list[_Field]
    single_keys: tuple[str, ...] | None  # the fields' keys when no field is a range
    float_template: str  # the fields as one %-format of their values (a range: min and max)
    text_template: str  # the same with %s, for values formatted one by one


def _shown_keys(metrics: Mapping[str, float]) -> _Shown:
    """The console's selection for the keys of ``metrics``, made once per key set."""
    keys = tuple(metrics)
    shown = _SHOWN.get(keys)
    if shown is None:  # the same keys come back at every log step: select them once
        if len(_SHOWN) >= _MAX_SELECTIONS:
            _SHOWN.clear()
        fields = _select_fields(metrics)
        labels = [
            (field.label if not field.is_range else key, key)
            for field in fields
            for key in field.keys
        ]
        any_range = any(field.is_range for field in fields)
        shown = _SHOWN[keys] = _Shown(
            labels,
            fields,
            None if any_range else tuple(field.keys[0] for field in fields),
            _SEPARATOR.join(_field_format(field, "%.4g") for field in fields),
            _SEPARATOR.join(_field_format(field, "%s") for field in fields),
        )
    return shown


def _field_format(field: _Field, value_format: str) -> str:
    label = field.label.replace("%", "%%")
    if field.is_range:
        return f"{label} {value_format}..{value_format} ({len(field.keys)} loaders)"
    return f"{label} {value_format}"


# key tuple -> the keys shown, in display order
_SHOWN: dict[tuple[str, ...], _Shown] = {}
_MAX_SELECTIONS = 16
_FLOAT_TYPE = frozenset({float})
MAX_LOADERS_SHOWN = 8  # more per-loader losses in one split are shown as one range field


def _select_fields(metrics: Mapping[str, float]) -> list[_Field]:
    """Pick the keys shown on the console, in display order (see the module docstring).

    Args:
        metrics: All metrics of one logging step.

    Returns:
        The fields; labels are the metric keys except ``lr`` for a single learning rate and
        ``<split>/dl_*/loss`` for a range over more than ``MAX_LOADERS_SHOWN`` loaders' losses.
        Throughput is not included (``format_metrics_line`` appends it).
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
    fields = [
        *_single_fields(sorted(train_aggregates, key=_loss_first)),
        *_loader_loss_fields("train", sorted(train_losses)),
        *_single_fields(sorted(val_aggregates, key=_loss_first)),
        *_loader_loss_fields("val", sorted(val_losses)),
    ]
    if len(rates) == 1:
        fields.append(_Field("lr", (rates[0],)))
    else:
        fields.extend(_single_fields(sorted(rates)))
    return fields


def _single_fields(keys: list[str]) -> list[_Field]:
    return [_Field(key, (key,)) for key in keys]


def _loader_loss_fields(split: str, keys: list[str]) -> list[_Field]:
    """One field per loader's loss, or one range field when there are too many to read."""
    if len(keys) <= MAX_LOADERS_SHOWN:
        return _single_fields(keys)
    return [_Field(f"{split}/dl_*/loss", tuple(keys))]


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
    values = _field_values(metrics, shown)
    fields = [head]
    if values and _FLOAT_TYPE.issuperset(map(type, values)):  # format_value's text, one call
        fields.append(shown.float_template % values)
    elif values:
        fields.append(shown.text_template % tuple(map(format_value, values)))
    if THROUGHPUT_KEY in metrics:
        fields.append(f"{float(metrics[THROUGHPUT_KEY]):.0f} samples/s")
    return _SEPARATOR.join(fields)


def _field_values(metrics: Mapping[str, float], shown: _Shown) -> tuple[float, ...]:
    """The values the templates format, in order: one per field, a range's min and max."""
    if shown.single_keys is not None:  # the usual case: no range field
        return tuple(map(metrics.__getitem__, shown.single_keys))
    values: list[float] = []
    for field in shown.fields:
        if field.is_range:
            losses = [metrics[key] for key in field.keys]
            values += (min(losses), max(losses))
        else:
            values.append(metrics[field.keys[0]])
    return tuple(values)


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
