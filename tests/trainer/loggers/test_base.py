"""Tests for the logger protocol, NullLogger and the image helpers."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from model_training_framework.trainer.loggers import (
    BaseLogger,
    CompositeLogger,
    ConsoleLogger,
    JsonlLogger,
    Logger,
    NullLogger,
)
from model_training_framework.trainer.loggers.base import (
    encode_png,
    flatten_params,
    import_optional,
    safe_file_stem,
    to_hwc_uint8,
)


def test_importing_loggers_does_not_import_optional_backends():
    code = (
        "import sys, model_training_framework.trainer.loggers\n"
        "loaded = [m for m in ('tensorboard', 'wandb', 'matplotlib', 'torch.utils.tensorboard')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_logger_satisfies_the_protocol(tmp_path):
    jsonl = JsonlLogger(tmp_path)
    loggers = [NullLogger(), BaseLogger(), ConsoleLogger(), jsonl, CompositeLogger([jsonl])]
    assert all(isinstance(logger, Logger) for logger in loggers)
    jsonl.close()


def test_null_logger_accepts_every_call_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = NullLogger()
    logger.log_scalars({"train/loss": 1.0}, step=1)
    logger.log_text("k", "text", step=1)
    logger.log_image("k", np.zeros((2, 2, 3), dtype=np.uint8), step=1)
    logger.log_hyperparams({"lr": 0.1})
    logger.close()
    assert list(tmp_path.iterdir()) == []


def test_tensor_chw_becomes_hwc_uint8():
    tensor = torch.zeros(3, 4, 5)
    tensor[0] = 1.0
    image = to_hwc_uint8(tensor)
    assert image.shape == (4, 5, 3)
    assert image.dtype == np.uint8
    assert (image[..., 0] == 255).all() and (image[..., 1:] == 0).all()


def test_bfloat16_tensor_is_converted():
    assert to_hwc_uint8(torch.full((1, 2, 2), 0.5, dtype=torch.bfloat16)).max() == 128


def test_numpy_hw_becomes_single_channel_and_floats_are_clipped():
    image = to_hwc_uint8(np.array([[-1.0, 0.5], [1.0, 7.0]]))
    assert image.shape == (2, 2, 1)
    assert image[..., 0].tolist() == [[0, 128], [255, 255]]


def test_integer_images_keep_their_0_to_255_scale():
    assert to_hwc_uint8(np.array([[0, 200, 300]], dtype=np.int64)).ravel().tolist() == [0, 200, 255]


@pytest.mark.parametrize("shape", [(2, 2, 5), (2,), (1, 2, 2, 3)])
def test_image_shapes_that_are_not_images_are_rejected(shape):
    with pytest.raises(ValueError, match="1-4 channels"):
        to_hwc_uint8(np.zeros(shape))


def test_non_array_image_is_rejected_with_type_name():
    with pytest.raises(TypeError, match="list"):
        to_hwc_uint8([[0, 1]])


def test_png_encoding_round_trips_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # IDAT payload: per row one filter byte (0) then the raw pixels.
    idat_start = data.index(b"IDAT") + 4
    idat_length = int.from_bytes(data[idat_start - 8 : idat_start - 4], "big")
    raw = zlib.decompress(data[idat_start : idat_start + idat_length])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(5, 1 + 7 * 3)
    assert (rows[:, 0] == 0).all()
    assert np.array_equal(rows[:, 1:].reshape(5, 7, 3), image)


def test_png_is_readable_by_matplotlib(tmp_path):
    image_module = pytest.importorskip("matplotlib.image")
    image = np.arange(4 * 6 * 4, dtype=np.uint8).reshape(4, 6, 4)
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(image))
    assert np.array_equal(np.rint(image_module.imread(path) * 255).astype(np.uint8), image)


def test_safe_file_stem_keeps_only_portable_characters():
    assert safe_file_stem("val/dl_a/sample images!") == "val_dl_a_sample_images"
    assert safe_file_stem("///") == "item"


def test_flatten_params_joins_nested_keys():
    assert flatten_params({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {
        "a/b": 1,
        "a/c/d": [1, 2],
        "e": None,
    }


def test_missing_optional_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"model-training-framework\[wandb\]"):
        import_optional("wandb", extra="wandb", purpose="W&B logging")
