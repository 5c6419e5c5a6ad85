"""Composite logger: fan-out and close semantics."""

from __future__ import annotations

import io

import numpy as np
import pytest

from model_training_framework.trainer.loggers import (
    METRICS_FILENAME,
    BaseLogger,
    CompositeLogger,
    ConsoleLogger,
    JsonlLogger,
)


class _FailingClose(BaseLogger):
    def close(self) -> None:
        raise OSError("disk gone")


def test_every_call_reaches_every_member(tmp_path, read_jsonl):
    first, second = JsonlLogger(tmp_path / "a"), JsonlLogger(tmp_path / "b")
    stream = io.StringIO()
    logger = CompositeLogger([first, ConsoleLogger(stream), second])
    logger.log_scalars({"train/loss": 0.5}, step=1)
    logger.log_text("note", "hi", step=2)
    logger.log_image("img", np.zeros((2, 2), dtype=np.uint8), step=3)
    logger.log_hyperparams({"lr": 0.1})
    logger.close()
    for run_dir in (tmp_path / "a", tmp_path / "b"):
        records = read_jsonl(run_dir / METRICS_FILENAME)
        assert [sorted(record) for record in records] == [
            ["step", "train/loss"],
            ["step", "text/note"],
            ["image/img", "step"],
        ]
        assert (run_dir / "hparams.json").is_file()
    assert stream.getvalue().splitlines() == ["step 1 | train/loss 0.5", "step 2 | note: hi"]


def test_close_closes_all_members_then_reraises_the_first_error(tmp_path):
    before, after = JsonlLogger(tmp_path / "a"), JsonlLogger(tmp_path / "b")
    logger = CompositeLogger([before, _FailingClose(), after])
    with pytest.raises(OSError, match="disk gone"):
        logger.close()
    with pytest.raises(ValueError, match="closed file"):
        after.log_scalars({"x": 1.0}, step=1)
    with pytest.raises(ValueError, match="closed file"):
        before.log_scalars({"x": 1.0}, step=1)


def test_error_in_a_member_is_not_hidden(tmp_path):
    logger = CompositeLogger([JsonlLogger(tmp_path)])
    with pytest.raises(TypeError, match="train/name"):
        logger.log_scalars({"train/name": "adam"}, step=1)
    logger.close()
