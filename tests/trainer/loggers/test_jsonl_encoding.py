"""metrics.jsonl lines are exactly what ``json`` writes for ``{"step": s, **metrics}``.

The logger formats the usual all-float lines from a template made once per key set (see NOTE
[line templates] in loggers/jsonl.py); these tests pin its output to the bytes that the
standard encoder (``separators=(",", ":")``) gives for the same record, so the file is the same
whichever way a line was made, and every float reads back to the same value.
"""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import numpy as np
import torch

from model_training_framework.trainer.loggers import METRICS_FILENAME, JsonlLogger

_REFERENCE = json.JSONEncoder(separators=(",", ":"))

KEYS = [
    "train/loss",
    "train/dl_a/loss",
    'odd "quoted" key',
    "percent %r %s %% key",
    "back\\slash",
    "tab\there\nnewline",
    "unicode µ ß 東京",
    "profile/train/dl_a/time_data_ms",
    "",
]


def _reference_line(metrics: dict[str, Any], step: int) -> bytes:
    record = {"step": step}
    record.update(metrics)
    return (_REFERENCE.encode(record) + "\n").encode("utf-8")


def _awkward_floats(rng: random.Random) -> list[float]:
    """Floats whose shortest repr is awkward: random bit patterns, tiny, huge, exact."""
    values = [0.0, -0.0, 1.0, 0.1, 1e16, 1e-5, 5e-324, 1.7976931348623157e308, 123456789.0]
    values += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(40)]
    values += [rng.uniform(-1e3, 1e3) for _ in range(40)]
    return [v for v in values if math.isfinite(v)]


def _write(tmp_path, calls: list[tuple[dict[str, Any], int]]) -> bytes:
    logger = JsonlLogger(tmp_path)
    for metrics, step in calls:
        logger.log_scalars(metrics, step)
    logger.close()
    return (tmp_path / METRICS_FILENAME).read_bytes()


def test_all_float_lines_are_byte_identical_to_the_standard_encoder(tmp_path):
    rng = random.Random(0)
    floats = _awkward_floats(rng)
    calls = []
    for step in range(1, 60):
        keys = KEYS if step % 3 else KEYS[:4]  # two key sets, alternating
        calls.append(({key: rng.choice(floats) for key in keys}, step))
    expected = b"".join(_reference_line(metrics, step) for metrics, step in calls)
    assert _write(tmp_path, calls) == expected
    for line, (metrics, _) in zip(expected.splitlines(), calls, strict=True):
        assert list(json.loads(line).values())[1:] == list(metrics.values())  # round trip


def test_non_finite_and_non_float_values_are_written_as_before(tmp_path):
    calls = [
        ({"train/loss": float("nan"), "b": 1.5}, 1),
        ({"train/loss": float("inf"), "b": -float("inf")}, 2),
        ({"train/loss": 1e308, "b": 1e308}, 3),  # finite, but their sum overflows
        ({"train/loss": 0.5, "count": 3, "flag": True}, 4),
        ({"train/loss": np.float32(0.25), "t": torch.tensor(2.0)}, 5),
        ({1: 0.5, "b": 2.0}, 6),  # a key that is not a string
        ({}, 7),
    ]
    converted = [
        ({k: v if isinstance(v, (bool, int, float)) else float(v) for k, v in m.items()}, s)
        for m, s in calls
    ]
    expected = b"".join(_reference_line(metrics, step) for metrics, step in converted)
    assert _write(tmp_path, calls) == expected


def test_a_step_logged_twice_is_merged_into_one_line_as_before(tmp_path):
    calls = [
        ({"train/loss": 0.5, "val/loss": 9.0}, 10),
        ({"val/loss": 0.75, "val/dl_a/loss": 0.7}, 10),
        ({"train/loss": 0.25}, 20),
        ({"train/loss": 0.125}, 20),
        ({"train/loss": 0.1}, 30),
    ]
    expected = (
        _reference_line({"train/loss": 0.5, "val/loss": 0.75, "val/dl_a/loss": 0.7}, 10)
        + _reference_line({"train/loss": 0.125}, 20)
        + _reference_line({"train/loss": 0.1}, 30)
    )
    assert _write(tmp_path, calls) == expected


def test_a_step_given_as_another_integer_type_is_written_as_an_int(tmp_path):
    calls = [({"train/loss": 0.5}, np.int64(4)), ({"train/loss": 0.25}, True)]
    expected = _reference_line({"train/loss": 0.5}, 4) + _reference_line({"train/loss": 0.25}, 1)
    assert _write(tmp_path, calls) == expected
