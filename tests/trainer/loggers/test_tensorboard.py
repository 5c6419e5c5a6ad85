"""TensorBoard logger: write real event files and read them back with TensorBoard's reader."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

from model_training_framework.trainer.loggers import TensorBoardLogger


def _reload(log_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_are_readable_with_their_steps(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.log_scalars({"train/loss": 1.0, "train/dl_a/loss": 2.0}, step=10)
    logger.log_scalars({"train/loss": 0.5}, step=20)
    logger.close()
    accumulator = _reload(tmp_path)
    assert set(accumulator.Tags()["scalars"]) == {"train/loss", "train/dl_a/loss"}
    events = accumulator.Scalars("train/loss")
    assert [(event.step, event.value) for event in events] == [(10, 1.0), (20, 0.5)]


def test_text_image_and_figure_are_recorded(tmp_path):
    figure_module = pytest.importorskip("matplotlib.figure")
    figure = figure_module.Figure()
    figure.subplots().plot([0, 1], [0, 1])
    logger = TensorBoardLogger(tmp_path)
    logger.log_text("notes", "hello", step=3)
    logger.log_image("samples/tensor", torch.rand(3, 8, 6), step=4)
    logger.log_image("samples/gray", np.zeros((5, 5)), step=5)
    logger.log_figure("curves", figure, step=6)
    logger.close()
    accumulator = _reload(tmp_path)
    assert set(accumulator.Tags()["images"]) == {"samples/tensor", "samples/gray", "curves"}
    (image,) = accumulator.Images("samples/tensor")
    assert (image.step, image.width, image.height) == (4, 6, 8)
    assert accumulator.Images("curves")[0].step == 6
    assert "notes/text_summary" in accumulator.Tags()["tensors"]
    (text_event,) = accumulator.Tensors("notes/text_summary")
    assert text_event.step == 3
    assert text_event.tensor_proto.string_val == [b"hello"]


def test_hyperparams_are_attached_to_this_run(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"optimizer": {"lr": 0.01, "name": "adamw"}, "layers": [1, 2]})
    logger.close()
    # No timestamped sub-run: everything lives in the one directory.
    assert [path.is_file() for path in tmp_path.iterdir()] == [True]
    content = _reload(tmp_path).PluginTagToContent("hparams")
    session_start = content["_hparams_/session_start_info"]
    for fragment in (b"optimizer/lr", b"optimizer/name", b"adamw", b"layers", b"[1, 2]"):
        assert fragment in session_start


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"model-training-framework\[tensorboard\]"):
        TensorBoardLogger(tmp_path)


def test_a_resumed_writer_hides_what_the_interrupted_one_logged_after_the_checkpoint(tmp_path):
    first = TensorBoardLogger(tmp_path)
    for step in (2, 4, 6):
        first.log_scalars({"train/loss": float(step)}, step)
    first.close()
    resumed = TensorBoardLogger(tmp_path, purge_after_step=4)
    resumed.log_scalars({"train/loss": 60.0}, 6)
    resumed.close()
    events = _reload(tmp_path).Scalars("train/loss")
    assert [(event.step, event.value) for event in events] == [(2, 2.0), (4, 4.0), (6, 60.0)]
