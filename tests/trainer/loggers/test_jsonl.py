"""Tests for the always-on metrics.jsonl logger."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_training_framework.trainer.loggers import METRICS_FILENAME, JsonlLogger


def test_each_scalar_call_is_one_flat_line_with_step(tmp_path, read_jsonl):
    logger = JsonlLogger(tmp_path)
    logger.log_scalars({"train/loss": 0.5, "train/dl_a/loss": 0.25}, step=10)
    logger.log_scalars({"val/loss": 0.75}, step=20)
    logger.close()
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [
        {"step": 10, "train/loss": 0.5, "train/dl_a/loss": 0.25},
        {"step": 20, "val/loss": 0.75},
    ]


def test_lines_reach_the_file_before_close(tmp_path, read_jsonl):
    # A SIGKILL never runs close(): what was logged must already be in the file.
    logger = JsonlLogger(tmp_path)
    logger.log_scalars({"train/loss": 1.5}, step=3)
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [{"step": 3, "train/loss": 1.5}]
    logger.close()


def test_calls_for_the_same_step_share_one_line_already_on_disk(tmp_path, read_jsonl):
    logger = JsonlLogger(tmp_path)
    logger.log_scalars({"train/loss": 0.5, "val/loss": 9.0}, step=10)
    logger.log_scalars({"val/loss": 0.75}, step=10)
    logger.log_text("note", "epoch done", step=10)
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [
        {"step": 10, "train/loss": 0.5, "val/loss": 0.75, "text/note": "epoch done"}
    ]
    logger.log_scalars({"train/loss": 0.25}, step=20)
    logger.log_scalars({"train/loss": 0.125}, step=30)
    logger.close()
    assert [record["step"] for record in read_jsonl(tmp_path / METRICS_FILENAME)] == [10, 20, 30]


def test_merging_never_touches_lines_of_an_earlier_run(tmp_path, read_jsonl):
    first = JsonlLogger(tmp_path)
    first.log_scalars({"train/loss": 1.0}, step=5)
    first.close()
    resumed = JsonlLogger(tmp_path)
    resumed.log_scalars({"train/loss": 0.9}, step=5)
    resumed.log_scalars({"val/loss": 0.8}, step=5)
    resumed.close()
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [
        {"step": 5, "train/loss": 1.0},
        {"step": 5, "train/loss": 0.9, "val/loss": 0.8},
    ]


def test_tensor_and_numpy_scalars_are_written_as_numbers(tmp_path, read_jsonl):
    logger = JsonlLogger(tmp_path)
    logger.log_scalars(
        {"a": torch.tensor(2.0, requires_grad=True), "b": np.float32(0.5), "c": 3}, step=1
    )
    logger.close()
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [{"step": 1, "a": 2.0, "b": 0.5, "c": 3}]


def test_reopening_appends_so_resumed_runs_continue_the_file(tmp_path, read_jsonl):
    first = JsonlLogger(tmp_path)
    first.log_scalars({"train/loss": 1.0}, step=1)
    first.close()
    second = JsonlLogger(tmp_path)
    second.log_scalars({"train/loss": 0.5}, step=2)
    second.close()
    assert [line["step"] for line in read_jsonl(tmp_path / METRICS_FILENAME)] == [1, 2]


def test_line_cut_short_by_a_kill_is_isolated_on_reopen(tmp_path):
    path = tmp_path / METRICS_FILENAME
    path.write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/lo', encoding="utf-8")
    logger = JsonlLogger(tmp_path)
    logger.log_scalars({"train/loss": 0.5}, step=3)
    logger.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"step": 2, "train/lo'
    assert json.loads(lines[2]) == {"step": 3, "train/loss": 0.5}


def test_text_is_stored_under_text_prefix(tmp_path, read_jsonl):
    logger = JsonlLogger(tmp_path)
    logger.log_text("samples", 'line one\nline "two"', step=7)
    logger.close()
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [
        {"step": 7, "text/samples": 'line one\nline "two"'}
    ]


def test_image_is_saved_as_png_under_media_and_referenced(tmp_path, read_jsonl):
    logger = JsonlLogger(tmp_path)
    logger.log_image("val/sample", torch.rand(3, 6, 4), step=5)
    logger.close()
    (record,) = read_jsonl(tmp_path / METRICS_FILENAME)
    assert record["step"] == 5
    png = tmp_path / record["image/val/sample"]
    assert png.parent == tmp_path / "media"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_is_saved_as_png_under_media_and_referenced(tmp_path, read_jsonl):
    figure_module = pytest.importorskip("matplotlib.figure")
    figure = figure_module.Figure()
    figure.subplots().plot([0, 1], [1, 0])
    logger = JsonlLogger(tmp_path)
    logger.log_figure("curves", figure, step=9)
    logger.close()
    (record,) = read_jsonl(tmp_path / METRICS_FILENAME)
    png = tmp_path / record["figure/curves"]
    assert png.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hyperparams_go_to_hparams_json(tmp_path):
    logger = JsonlLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.01, "optimizer": {"name": "adamw"}, "root": tmp_path})
    logger.close()
    saved = json.loads((tmp_path / "hparams.json").read_text(encoding="utf-8"))
    assert saved == {"lr": 0.01, "optimizer": {"name": "adamw"}, "root": str(tmp_path)}


def test_metric_named_step_is_rejected(tmp_path):
    logger = JsonlLogger(tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        logger.log_scalars({"step": 1.0}, step=1)
    logger.close()


def test_non_numeric_metric_names_the_key(tmp_path):
    logger = JsonlLogger(tmp_path)
    with pytest.raises(TypeError, match="train/name"):
        logger.log_scalars({"train/name": "adam"}, step=1)
    logger.close()


def test_close_twice_is_harmless(tmp_path):
    logger = JsonlLogger(tmp_path)
    logger.close()
    logger.close()


def test_reopening_after_a_resume_drops_the_lines_of_later_steps(tmp_path):
    first = JsonlLogger(tmp_path)
    for step in (2, 4, 6):
        first.log_scalars({"train/loss": float(step)}, step)
    first.close()
    with (tmp_path / METRICS_FILENAME).open("ab") as handle:
        handle.write(b'{"step":8,"train/lo')  # a line a kill cut short

    resumed = JsonlLogger(tmp_path, keep_through_step=4)
    resumed.log_text("resume", "resumed", 4)  # extends step 4's line, not a second one
    resumed.log_scalars({"train/loss": 60.0}, 6)
    resumed.close()

    lines = [json.loads(line) for line in (tmp_path / METRICS_FILENAME).read_text().splitlines()]
    assert lines == [
        {"step": 2, "train/loss": 2.0},
        {"step": 4, "train/loss": 4.0, "text/resume": "resumed"},
        {"step": 6, "train/loss": 60.0},
    ]


def test_dropping_lines_of_a_run_that_went_further_does_not_call_it_interrupted(tmp_path, caplog):
    """A fresh start over a finished run (examples/weighted_multitask.py, which turns the
    auto-resume off, run twice) drops the earlier run's lines after step 0. The message said
    they were 'logged after step 0 by an interrupted run', though nothing was interrupted."""
    first = JsonlLogger(tmp_path)
    for step in (40, 50, 80):
        first.log_scalars({"train/loss": float(step)}, step)
    first.close()
    with caplog.at_level("INFO", logger="model_training_framework.trainer.loggers.jsonl"):
        JsonlLogger(tmp_path, keep_through_step=0).close()
    (message,) = [record.getMessage() for record in caplog.records]
    assert "interrupted" not in message
    assert message.endswith(
        "metrics.jsonl: dropped 3 line(s) that an earlier run logged after step 0, "
        "the step this run starts from"
    )


def test_reopening_without_a_resume_step_keeps_every_line(tmp_path):
    first = JsonlLogger(tmp_path)
    first.log_scalars({"train/loss": 1.0}, 9)
    first.close()
    JsonlLogger(tmp_path).close()
    assert (tmp_path / METRICS_FILENAME).read_text() == '{"step":9,"train/loss":1.0}\n'
