"""build_logger: JSONL always on, configured backends, rank 0 only, clear config errors."""

from __future__ import annotations

import sys

import pytest

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.loggers import (
    METRICS_FILENAME,
    CompositeLogger,
    ConsoleLogger,
    JsonlLogger,
    NullLogger,
    TensorBoardLogger,
    WandbLogger,
    build_logger,
)


def _member_types(logger):
    assert isinstance(logger, CompositeLogger)
    return [type(member) for member in logger.loggers]


def test_console_config_gives_jsonl_plus_console(tmp_path, make_logging_config, read_jsonl):
    logger = build_logger(make_logging_config(), tmp_path, is_rank_zero=True)
    assert _member_types(logger) == [JsonlLogger, ConsoleLogger]
    logger.log_scalars({"train/loss": 0.5}, step=4)
    logger.close()
    assert read_jsonl(tmp_path / METRICS_FILENAME) == [{"step": 4, "train/loss": 0.5}]


def test_other_ranks_get_a_null_logger_and_write_nothing(tmp_path, make_logging_config):
    run_dir = tmp_path / "run"
    config = make_logging_config(
        logger_type="composite", composite_loggers=["console", "tensorboard"]
    )
    logger = build_logger(config, run_dir, is_rank_zero=False, hparams={"lr": 0.1})
    assert isinstance(logger, NullLogger)
    logger.log_scalars({"train/loss": 0.5}, step=1)
    logger.close()
    assert not run_dir.exists()


def test_tensorboard_defaults_to_run_dir_subfolder(tmp_path, make_logging_config):
    pytest.importorskip("tensorboard")
    logger = build_logger(
        make_logging_config(logger_type="tensorboard"), tmp_path, is_rank_zero=True
    )
    assert _member_types(logger) == [JsonlLogger, TensorBoardLogger]
    logger.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_tensorboard_dir_setting_is_used(tmp_path, make_logging_config):
    pytest.importorskip("tensorboard")
    board_dir = tmp_path / "boards" / "exp"
    config = make_logging_config(logger_type="tensorboard", tensorboard_dir=str(board_dir))
    build_logger(config, tmp_path / "run", is_rank_zero=True).close()
    assert list(board_dir.glob("events.out.tfevents.*"))
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_composite_builds_members_in_order_and_records_hparams(
    tmp_path, make_logging_config, monkeypatch
):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    config = make_logging_config(
        logger_type="composite",
        composite_loggers=["wandb", "tensorboard", "console"],
        wandb_mode="offline",
        wandb_project="mtf-tests",
    )
    run_dir = tmp_path / "run"
    logger = build_logger(config, run_dir, is_rank_zero=True, hparams={"lr": 0.1})
    assert _member_types(logger) == [JsonlLogger, WandbLogger, TensorBoardLogger, ConsoleLogger]
    logger.log_scalars({"train/loss": 0.5}, step=1)
    logger.close()
    assert (run_dir / "hparams.json").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*/*.wandb"))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_missing_backend_fails_with_the_extra_and_closes_what_was_opened(
    tmp_path, make_logging_config, monkeypatch, read_jsonl
):
    monkeypatch.setitem(sys.modules, "wandb", None)
    config = make_logging_config(logger_type="wandb", wandb_mode="offline")
    with pytest.raises(ImportError, match=r"model-training-framework\[wandb\]"):
        build_logger(config, tmp_path, is_rank_zero=True)
    # The JSONL file was opened first; it is left empty and closed (a retry can reopen it).
    assert read_jsonl(tmp_path / METRICS_FILENAME) == []


def test_unknown_logger_type_lists_the_choices(tmp_path, make_logging_config):
    config = make_logging_config()
    object.__setattr__(config, "logger_type", "mlflow")  # bypass validation: factory's own check
    with pytest.raises(ConfigError, match=r"logger_type.*mlflow.*console, tensorboard, wandb"):
        build_logger(config, tmp_path, is_rank_zero=True)
    assert not (tmp_path / METRICS_FILENAME).exists()


def test_composite_without_members_is_a_config_error(tmp_path, make_logging_config):
    config = make_logging_config()
    config.logger_type = "composite"  # cross-field checks wait for fit; the factory still checks
    with pytest.raises(ConfigError, match="composite_loggers is empty"):
        build_logger(config, tmp_path, is_rank_zero=True)
