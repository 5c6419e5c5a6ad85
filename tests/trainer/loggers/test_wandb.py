"""W&B logger in offline mode: the offline run is written under the run directory."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("wandb")

from model_training_framework.trainer.loggers import WandbLogger


@pytest.fixture
def quiet_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("WANDB_MODE", raising=False)


def _log_everything(logger: WandbLogger) -> None:
    logger.log_hyperparams({"lr": 0.01})
    logger.log_scalars({"train/loss": 1.0}, step=1)
    logger.log_text("notes", "a <b> c", step=1)
    logger.log_image("sample", np.zeros((4, 4, 3), dtype=np.uint8), step=2)
    logger.close()


def _offline_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_mode_from_config_writes_the_run_under_run_dir(tmp_path, quiet_wandb):
    run_dir = tmp_path / "exp"
    _log_everything(WandbLogger(run_dir, project="mtf-tests", mode="offline"))
    (offline_run,) = _offline_runs(run_dir)
    (run_file,) = offline_run.glob("*.wandb")
    assert run_file.stat().st_size > 0
    assert list((offline_run / "files" / "media" / "images").glob("sample_*.png"))


def test_offline_mode_from_environment(tmp_path, quiet_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "exp"
    logger = WandbLogger(run_dir, project="mtf-tests")
    logger.log_scalars({"train/loss": 1.0}, step=1)
    logger.close()
    logger.close()
    assert len(_offline_runs(run_dir)) == 1


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"model-training-framework\[wandb\]"):
        WandbLogger(tmp_path, mode="offline")
