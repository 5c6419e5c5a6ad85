"""A monitored metric (early stopping, best.ckpt) that the run never produces is a ConfigError
at the first evaluation, naming the metrics that were produced (never a silent no-op)."""

from __future__ import annotations

import pytest
import torch

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)

from .fit_helpers import make_loader, mse_step


def loss_free_aggregation(per_loader):
    """A custom aggregation that forgets to return ``loss``."""
    return {"mean_error": sum(m["loss"] for m in per_loader.values()) / len(per_loader)}


def _fit(tmp_path, *, val: bool = True, max_epochs: int = 3, **config):
    trainer = GenericTrainer(
        GenericTrainerConfig(
            experiment_name="m",
            seed=0,
            checkpoint={"root_dir": str(tmp_path), **config.pop("checkpoint", {})},
            train_loader_config=MultiDataLoaderConfig(),
            **config,
        ),
        torch.nn.Linear(3, 1),
        [torch.optim.SGD(torch.nn.Linear(3, 1).parameters(), lr=0.1)],
    )
    trainer.set_training_step(mse_step)
    trainer.set_validation_step(mse_step)
    return trainer.fit(
        [make_loader(16)], [make_loader(16, 1)] if val else None, max_epochs=max_epochs
    )


def test_mistyped_early_stopping_metric_is_an_error_naming_the_produced_ones(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _fit(tmp_path, early_stopping_patience=1, early_stopping_metric="val/los")
    message = str(caught.value)
    assert "early_stopping_metric is 'val/los'" in message
    assert "did you mean 'val/loss'?" in message
    assert "metrics produced: " in message and "val/dl_" in message and "train/loss" in message


def test_custom_aggregation_without_loss_is_an_error_for_the_default_metric(tmp_path):
    with pytest.raises(ConfigError, match=r"early_stopping_metric is 'val/loss'.*val/mean_error"):
        _fit(
            tmp_path,
            early_stopping_patience=2,
            validation={
                "aggregation": "custom",
                "aggregation_fn": f"{__name__}.loss_free_aggregation",
            },
        )


def test_mistyped_checkpoint_monitor_metric_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"checkpoint.monitor_metric is 'val/accuracy'"):
        _fit(tmp_path, checkpoint={"monitor_metric": "val/accuracy"})


def test_validation_metric_monitored_without_validation_loaders_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"early_stopping_metric is 'val/loss'.*train/loss"):
        _fit(tmp_path, val=False, early_stopping_patience=1)


def test_mistyped_training_metric_is_an_error_at_the_first_training_log(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'train/loss'"):
        _fit(tmp_path, val=False, early_stopping_patience=1, early_stopping_metric="train/los")


def test_produced_monitored_metrics_train_and_stop_as_configured(tmp_path):
    result = _fit(
        tmp_path,
        max_epochs=30,
        early_stopping_patience=1,
        early_stopping_min_delta=1e9,  # nothing counts as an improvement: stop at the 2nd check
        checkpoint={"monitor_metric": "val/loss"},
    )
    assert result.status.value == "early_stopped" and result.epoch == 2
    assert (tmp_path / "m" / "best.ckpt").exists()


def test_an_early_stopped_run_rerun_with_the_same_limits_returns_at_once(tmp_path):
    settings = dict(
        max_epochs=30,
        early_stopping_patience=1,
        early_stopping_min_delta=1e9,  # nothing counts as an improvement: stop at the 2nd check
    )
    first = _fit(tmp_path, **settings)
    again = _fit(tmp_path, **settings)
    assert (again.status, again.global_step, again.epoch) == (
        first.status,
        first.global_step,
        first.epoch,
    )
    more = _fit(tmp_path, **{**settings, "max_epochs": 31})  # other limits: trains on
    assert more.global_step > first.global_step


@pytest.mark.parametrize(
    "monitored, val",
    [
        ({"early_stopping_patience": 1, "early_stopping_metric": "train/loss"}, True),
        ({"early_stopping_patience": 1}, False),  # val/loss without validation loaders
        ({"checkpoint": {"monitor_metric": "train/loss"}}, True),
    ],
)
def test_a_metric_that_needs_training_metrics_switched_off_is_an_error(tmp_path, monitored, val):
    # With log_loss_every_n_steps=None no training metric is logged, so the check waited for a
    # train/loss that never came: early stopping and best.ckpt were silently off.
    with pytest.raises(ConfigError, match=r"log_loss_every_n_steps is None.*never produced"):
        _fit(tmp_path, val=val, log_loss_every_n_steps=None, early_stopping_mode="max", **monitored)


@pytest.mark.parametrize(
    ("config", "field", "name", "meant", "val"),
    [
        ({"early_stopping_patience": 1}, "early_stopping_metric", "val_loss", "val/loss", True),
        ({}, "checkpoint.monitor_metric", "val_loss", "val/loss", True),
        (
            {"early_stopping_patience": 1},
            "early_stopping_metric",
            "train_loss",
            "train/loss",
            False,
        ),
    ],
)
def test_an_underscore_spelling_of_a_produced_metric_is_an_error(
    tmp_path, config, field, name, meant, val
):
    # Lightning's (and the reference's) 'val_loss' was not checked at all, as a name a hook
    # might log, so early stopping and best.ckpt were silently off.
    if field == "checkpoint.monitor_metric":
        config = {"checkpoint": {"monitor_metric": name}}
    else:
        config = {**config, field: name}
    with pytest.raises(ConfigError, match=rf"{field} is '{name}'.*did you mean '{meant}'"):
        _fit(tmp_path, val=val, **config)
    assert not list(tmp_path.glob("m/*.ckpt")), "refused at the first evaluation, before a save"


class LogsValF1(TrainerHooks):
    def on_validation_end(self, trainer, metrics):
        trainer.log_metrics({"val_f1": 1.0 - metrics["val/loss"], "val_loss": metrics["val/loss"]})


@pytest.mark.parametrize("name", ["val_f1", "val_loss"])
def test_underscore_metrics_that_a_hook_logs_can_be_monitored(tmp_path, name):
    trainer_config = {"early_stopping_patience": 1, "early_stopping_metric": name}
    trainer = GenericTrainer(
        GenericTrainerConfig(
            experiment_name="m",
            seed=0,
            checkpoint={"root_dir": str(tmp_path)},
            train_loader_config=MultiDataLoaderConfig(),
            early_stopping_mode="max" if name == "val_f1" else "min",
            **trainer_config,
        ),
        torch.nn.Linear(3, 1),
        [torch.optim.SGD(torch.nn.Linear(3, 1).parameters(), lr=0.1)],
    )
    trainer.set_training_step(mse_step)
    trainer.set_validation_step(mse_step)
    trainer.add_hook(LogsValF1())
    result = trainer.fit([make_loader(16)], [make_loader(16, 1)], max_epochs=2)
    assert name in result.metrics
