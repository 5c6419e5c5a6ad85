"""Config values a migrating user brings: path-like objects, and ``None`` as "logging off"."""

from __future__ import annotations

import json
import pathlib
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainer,
    GenericTrainerConfig,
    LoggingConfig,
    MultiDataLoaderConfig,
    WarmStartConfig,
)

# ---------------------------------------------------------------- path-like values


def test_checkpoint_root_dir_accepts_a_pathlib_path_and_stores_a_string(tmp_path):
    config = CheckpointConfig(root_dir=tmp_path / "runs")
    assert config.root_dir == str(tmp_path / "runs")


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (CheckpointConfig, "root_dir"),
        (LoggingConfig, "tensorboard_dir"),
    ],
)
def test_every_path_field_accepts_path_like_on_assignment(tmp_path, section, field):
    config = section()
    setattr(config, field, pathlib.PurePosixPath("a") / "b")
    assert getattr(config, field) == "a/b"


def test_warm_start_checkpoint_path_accepts_a_path(tmp_path):
    config = WarmStartConfig(loader_class="pkg.mod.load", checkpoint_path=tmp_path / "w.pt")
    assert config.checkpoint_path == str(tmp_path / "w.pt")


def test_config_with_path_objects_round_trips_through_yaml(tmp_path):
    config = GenericTrainerConfig(
        checkpoint=CheckpointConfig(root_dir=tmp_path),
        logging=LoggingConfig(tensorboard_dir=tmp_path / "tb"),
    )
    config.to_yaml(tmp_path / "c.yaml")
    assert "!!python" not in (tmp_path / "c.yaml").read_text()
    assert GenericTrainerConfig.from_yaml(tmp_path / "c.yaml") == config


def test_a_home_relative_path_from_yaml_is_under_the_home_directory(tmp_path, monkeypatch):
    # "~/runs" was kept as is: the runs went to a directory literally named "~" in the
    # working directory (which a later `rm -rf ~` meant to clean it up would be fatal to).
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "c.yaml"
    path.write_text(
        "checkpoint: {root_dir: ~/runs}\n"
        "logging: {tensorboard_dir: ~/tb}\n"
        "warm_start: {loader_class: pkg.mod.load, checkpoint_path: ~/w.pt}\n",
        encoding="utf-8",
    )
    config = GenericTrainerConfig.from_yaml(path)
    assert config.checkpoint.root_dir == str(tmp_path / "home" / "runs")
    assert config.logging.tensorboard_dir == str(tmp_path / "home" / "tb")
    assert config.warm_start.checkpoint_path == str(tmp_path / "home" / "w.pt")
    config.checkpoint.root_dir = pathlib.Path("~") / "other"
    assert config.checkpoint.root_dir == str(tmp_path / "home" / "other")


def test_a_non_path_object_is_still_refused():
    with pytest.raises(ValueError, match="root_dir"):
        CheckpointConfig(root_dir=3)


# ---------------------------------------------------------------- None means "off"


def _run(tmp_path, **changes) -> list[dict]:
    loader = DataLoader(TensorDataset(torch.randn(16, 3), torch.randn(16, 1)), batch_size=2)
    config = GenericTrainerConfig(
        experiment_name="off",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(dataloader_names=["main"]),
        checkpoint=CheckpointConfig(root_dir=tmp_path),  # a Path, as the reference allowed
        **changes,
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    trainer.set_validation_step(step)
    val = DataLoader(TensorDataset(torch.randn(4, 3), torch.randn(4, 1)), batch_size=2)
    result = trainer.fit(train_loaders=[loader], val_loaders=[val], max_epochs=2)
    assert result.global_step == 16
    lines = (tmp_path / "off" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_log_loss_every_n_steps_none_logs_no_step_metrics(tmp_path):
    rows = _run(tmp_path, log_loss_every_n_steps=None, logging={"log_scalars_every_n_steps": 1})
    keys = {key for row in rows for key in row}
    assert not {k for k in keys if k.startswith("train/")}
    assert "val/loss" in keys  # validation is not a step metric: still logged
    assert "profile/train/dl_main/time_forward_ms" in keys


def test_log_scalars_every_n_steps_none_logs_no_profiling_metrics(tmp_path):
    rows = _run(tmp_path, log_loss_every_n_steps=1, logging={"log_scalars_every_n_steps": None})
    keys = {key for row in rows for key in row}
    assert not {k for k in keys if k.startswith("profile/")}
    assert "train/loss" in keys


def test_both_off_train_and_checkpoint_without_errors(tmp_path):
    rows = _run(tmp_path, log_loss_every_n_steps=None, logging={"log_scalars_every_n_steps": None})
    metric_keys = {key for row in rows for key in row} - {"step", "text/data_fingerprint"}
    assert metric_keys == {"val/loss", "val/dl_dl0/loss"}
    assert (tmp_path / "off" / "latest.ckpt").exists()


def test_none_intervals_round_trip_through_yaml(tmp_path):
    config = GenericTrainerConfig(log_loss_every_n_steps=None)
    config.logging.log_scalars_every_n_steps = None
    config.to_yaml(tmp_path / "c.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = GenericTrainerConfig.from_yaml(tmp_path / "c.yaml")
    assert loaded.log_loss_every_n_steps is None
    assert loaded.logging.log_scalars_every_n_steps is None
    assert loaded == config


@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_negative_interval_is_still_an_error(value):
    with pytest.raises(ValueError, match="log_loss_every_n_steps"):
        GenericTrainerConfig(log_loss_every_n_steps=value)
