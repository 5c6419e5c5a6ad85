"""``metrics.jsonl``: the always-on, append-only record of a run (the source for ``mtf plot``).

Format: one flat JSON object per logged step, ``{"step": <global_step>, "<metric key>": value,
...}``. Consecutive calls for the same step (training metrics, then validation, then a text)
extend that step's line rather than adding another. Text is stored as ``{"step": s, "text/<key>": "..."}``; images and figures are written as PNG
files under ``<run_dir>/media/`` and referenced as ``{"step": s, "image/<key>": "media/..."}``
(``figure/<key>`` for figures). Hyperparameters go to ``<run_dir>/hparams.json``.

NOTE [metrics file durability]: the file is opened unbuffered in append mode and every call is
written at once: a SIGKILL loses at most the line being written. Extending the current step's line
truncates the file to that line's start and writes the merged line. A resumed run first drops
the records that the interrupted attempt logged after the checkpoint's step (``keep_through_step``;
an atomic rewrite of the file), so no step appears twice, then appends. A line cut short by a
kill is closed with a newline when the file is reopened (or dropped by that rewrite), and
readers skip it.

NOTE [line templates]: a line is written at every log step, and with many loaders it holds
hundreds of values (per-loader losses and timings). The keys of those lines repeat from one log
step to the next, so the logger makes, once per key set, a %-format of the whole line with the
keys already encoded, and fills in the values with one ``%`` call. It is used when every value
is a finite float and every key a string: ``%r`` of a float is the repr that ``json`` writes,
so the line is byte for byte the one the standard encoder gives for the same record (other
lines take the encoder). tests/trainer/loggers/test_jsonl_encoding.py pins this.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from model_training_framework.io_utils import atomic_write_bytes
from model_training_framework.trainer.loggers.base import (
    BaseLogger,
    encode_png,
    safe_file_stem,
    to_hwc_uint8,
)

__all__ = [
    "HPARAMS_FILENAME",
    "MEDIA_DIRNAME",
    "METRICS_FILENAME",
    "STEP_KEY",
    "JsonlLogger",
]

METRICS_FILENAME = "metrics.jsonl"
HPARAMS_FILENAME = "hparams.json"
MEDIA_DIRNAME = "media"
STEP_KEY = "step"
# One encoder for every line: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_FLOAT_TYPE = frozenset({float})
_MAX_TEMPLATES = 16  # key sets remembered (a run logs a handful: train, epoch end, validation)

_log = logging.getLogger(__name__)


class JsonlLogger(BaseLogger):
    """Appends one JSON object per logged step to ``<run_dir>/metrics.jsonl`` (see module notes).

    Args:
        run_dir: The run directory; created if missing.
        keep_through_step: Drop the existing lines of steps after this one (and lines a kill
            cut short) before appending; None keeps the file as it is.

    Example:
        >>> logger = JsonlLogger(run_dir)                      # doctest: +SKIP
        >>> logger.log_scalars({"train/loss": 0.43}, step=120)  # doctest: +SKIP
        >>> logger.close()                                      # doctest: +SKIP
    """

    def __init__(self, run_dir: Path, *, keep_through_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILENAME
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._last_step: int | None = None
        # the last line's record; None when it was written from a template (then its keys and
        # values are kept instead, and the record is made only if the step is logged again)
        self._last_record: dict[str, Any] | None = {}
        self._last_items: tuple[tuple[str, ...], tuple[float, ...]] = ((), ())
        self._last_offset = 0
        self._templates: dict[tuple[Any, ...], str | None] = {}  # NOTE [line templates]
        if keep_through_step is not None and self.path.exists():
            self._drop_records_after(keep_through_step)
        self._file: BinaryIO = _open_for_append(self.path)

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Append ``{"step": step, **metrics}`` as one line.

        Raises:
            ValueError: ``metrics`` uses the reserved key ``"step"``.
            TypeError: A value is not a number (or a one-element tensor/array).
        """
        if STEP_KEY in metrics:
            raise ValueError(
                f"metric key '{STEP_KEY}' is reserved for the global step in {self.path.name}; "
                f"rename the metric (e.g. 'train/{STEP_KEY}')"
            )
        step = int(step)
        if self._write_from_template(metrics, step):
            return
        record: dict[str, Any] = {STEP_KEY: step}
        record.update(metrics)
        # floats (nearly every metric) need no conversion: one C-level pass finds the others
        if not _FLOAT_TYPE.issuperset(map(type, metrics.values())):
            for key, value in metrics.items():
                if type(value) is not float:
                    record[key] = _to_json_number(key, value)
        self._write(record)

    def log_text(self, key: str, text: str, step: int) -> None:
        """Append ``{"step": step, "text/<key>": text}``."""
        self._write({STEP_KEY: int(step), f"text/{key}": str(text)})

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Save ``image`` as ``media/<key>_step_<step>.png`` and append a reference to it."""
        relative = self._media_path(key, step)
        (self.run_dir / relative).write_bytes(encode_png(to_hwc_uint8(image)))
        self._write({STEP_KEY: int(step), f"image/{key}": relative.as_posix()})

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Save a matplotlib ``figure`` as a PNG under ``media/`` and append a reference to it."""
        relative = self._media_path(key, step)
        figure.savefig(self.run_dir / relative, format="png")
        self._write({STEP_KEY: int(step), f"figure/{key}": relative.as_posix()})

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Write ``params`` to ``<run_dir>/hparams.json`` (values JSON cannot hold become str)."""
        text = json.dumps(dict(params), indent=2, sort_keys=True, default=str)
        (self.run_dir / HPARAMS_FILENAME).write_text(text + "\n", encoding="utf-8")

    def close(self) -> None:
        """Flush and close the file; calling it again does nothing."""
        if not self._file.closed:
            self._file.close()

    def _write_from_template(self, metrics: Mapping[str, float], step: int) -> bool:
        """Write the line of a new step from its key set's template (NOTE [line templates]).

        Returns:
            False, writing nothing, unless every value is a finite float, every key a string
            and ``step`` is not the last line's step (then the caller writes the record).
        """
        values = tuple(metrics.values())
        # a sum of finite floats that overflows takes the encoder too (a rare, harmless miss)
        if (
            step == self._last_step
            or not _FLOAT_TYPE.issuperset(map(type, values))
            or not math.isfinite(sum(values))
        ):
            return False
        keys = tuple(metrics)
        template = self._template(keys)
        if template is None:
            return False
        self._last_offset = self._file.tell()
        self._file.write((template % (step, *values)).encode("utf-8"))
        self._last_step, self._last_record, self._last_items = step, None, (keys, values)
        return True

    def _template(self, keys: tuple[Any, ...]) -> str | None:
        """The line's %-format for ``keys`` (step first), or None when a key is no string."""
        try:
            return self._templates[keys]
        except KeyError:
            pass
        if len(self._templates) >= _MAX_TEMPLATES:
            self._templates.clear()
        template = None
        if all(type(key) is str for key in keys):
            fields = [f"{_ENCODER.encode(STEP_KEY)}:%d"]
            fields += [f"{_ENCODER.encode(key).replace('%', '%%')}:%r" for key in keys]
            template = "{" + ",".join(fields) + "}\n"
        self._templates[keys] = template
        return template

    def _last_line_record(self) -> dict[str, Any]:
        """The record of the last line written (made from its keys and values if need be)."""
        if self._last_record is None:
            keys, values = self._last_items
            self._last_record = {STEP_KEY: self._last_step, **dict(zip(keys, values, strict=True))}
        return self._last_record

    def _write(self, record: dict[str, Any]) -> None:
        step = record[STEP_KEY]
        if step == self._last_step:
            merged = {**self._last_line_record(), **record}
            self._file.truncate(self._last_offset)
        else:
            merged = record  # every caller builds a fresh dict
            self._last_offset = self._file.tell()
        self._file.write((_ENCODER.encode(merged) + "\n").encode("utf-8"))
        self._last_step, self._last_record = step, merged

    def _drop_records_after(self, step: int) -> None:
        """Rewrite the file (atomically) without lines of later steps or unreadable lines; the
        last kept line becomes the one that records of its step extend."""
        kept: list[bytes] = []
        last: dict[str, Any] | None = None
        lines = self.path.read_bytes().splitlines(keepends=True)
        for line in lines:
            record = _parse_record(line)
            if record is not None and record[STEP_KEY] <= step:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
                last = record
        if len(kept) != len(lines) or (lines and not lines[-1].endswith(b"\n")):
            atomic_write_bytes(self.path, b"".join(kept))
            _log.info(
                # a run killed after its last checkpoint, or one that went further than a
                # fresh start or an older starting checkpoint of the same directory
                "%s: dropped %d line(s) that an earlier run logged after step %d, the step this "
                "run starts from",
                self.path,
                len(lines) - len(kept),
                step,
            )
        if last is not None:
            self._last_step, self._last_record = last[STEP_KEY], last
            self._last_offset = sum(map(len, kept[:-1]))

    def _media_path(self, key: str, step: int) -> Path:
        (self.run_dir / MEDIA_DIRNAME).mkdir(exist_ok=True)
        return Path(MEDIA_DIRNAME) / f"{safe_file_stem(key)}_step_{int(step)}.png"


def _open_for_append(path: Path) -> BinaryIO:
    """Open unbuffered for appending; isolate a last line a kill cut short."""
    needs_newline = _ends_without_newline(path)
    handle = path.open("ab", buffering=0)
    if needs_newline:
        _log.warning(
            "%s ends with an incomplete line (the previous run was probably killed while "
            "writing it); it is kept as is and readers skip it",
            path,
        )
        handle.write(b"\n")
    return handle


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on ``line``, or None for a line that is not one (cut short by a kill)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get(STEP_KEY), int):
        return None
    return record


def _ends_without_newline(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


def _to_json_number(key: str, value: Any) -> int | float | bool:
    """Python numbers pass through; 0-d tensors / numpy scalars become float.

    Non-finite floats are written as JSON's common extensions ``NaN`` / ``Infinity``, which
    Python's ``json`` and pandas read back.
    """
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach()
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"metric '{key}' must be a number or a one-element tensor/array, got "
            f"{type(value).__name__}; log text with log_text and images with log_image"
        ) from err
    return number
