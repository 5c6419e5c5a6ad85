"""GenericTrainer: validation passes, logged metrics, early stopping, profiling and traces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_training_framework.trainer import (
    ValAggregation,
    ValidationFrequency,
)

from .fit_helpers import (
    make_config,
    make_loader,
    make_trainer,
    mse_step,
    read_jsonl,
)


# ---------------------------------------------------------------- validation and metrics
def test_per_epoch_validation_sees_each_batch_once_and_restores_train_mode(tmp_path):
    calls, modes = [], []

    def val_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        calls.append((dataloader_idx, batch_idx))
        modes.append(trainer.model.training)
        assert not torch.is_grad_enabled()
        return mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)

    train_modes = []

    def train_step(trainer, batch, *args):
        train_modes.append(trainer.model.training)
        return mse_step(trainer, batch, *args)

    trainer = make_trainer(make_config(tmp_path, validate_every_n_epochs=2), step=train_step)
    trainer.set_validation_step(val_step)
    trainer.fit([make_loader()], val_loaders=[make_loader(12, 1), make_loader(4, 2)], max_epochs=4)
    assert calls == [(0, 0), (0, 1), (0, 2), (1, 0)] * 2  # epochs 2 and 4
    assert not any(modes) and all(train_modes)


def test_step_based_validation(tmp_path):
    cfg = make_config(
        tmp_path, validation={"frequency": ValidationFrequency.EVERY_N_STEPS, "every_n_steps": 3}
    )
    trainer = make_trainer(cfg)
    trainer.fit([make_loader(24)], val_loaders=[make_loader(4, 1)], max_epochs=1)
    steps = [row["step"] for row in read_jsonl(tmp_path) if "val/loss" in row]
    assert steps == [3, 6]


@pytest.mark.parametrize(
    "aggregation, expected",
    [
        (ValAggregation.MICRO_AVG_WEIGHTED_BY_SAMPLES, (2 * 8 + 4 * 2) / 10),
        (ValAggregation.MACRO_AVG_EQUAL_LOADERS, (2 + 4) / 2),
    ],
)
def test_validation_aggregation_across_loaders(tmp_path, aggregation, expected):
    def val_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        return {"loss": float(2 + 2 * dataloader_idx)}

    trainer = make_trainer(make_config(tmp_path, validation={"aggregation": aggregation}))
    trainer.set_validation_step(val_step)
    result = trainer.fit([make_loader()], val_loaders=[make_loader(8, 1), make_loader(2, 2)])
    assert result.metrics["val/dl_dl0/loss"] == 2.0 and result.metrics["val/dl_dl1/loss"] == 4.0
    assert result.metrics["val/loss"] == pytest.approx(expected)


def test_custom_aggregation_function(tmp_path):
    def worst(per_loader):
        return {"worst_loss": max(m["loss"] for m in per_loader.values())}

    cfg = make_config(tmp_path, validation={"aggregation": "custom", "aggregation_fn": worst})
    trainer = make_trainer(cfg)
    result = trainer.fit([make_loader()], val_loaders=[make_loader(8, 1), make_loader(4, 2)])
    per_loader = [result.metrics["val/dl_dl0/loss"], result.metrics["val/dl_dl1/loss"]]
    assert result.metrics["val/worst_loss"] == max(per_loader)


def test_metric_keys_in_jsonl(tmp_path):
    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
        out["extra"] = 1.5
        return out

    cfg = make_config(
        tmp_path, loader={"dataloader_names": ["x", "y"]}, logging={"log_scalars_every_n_steps": 2}
    )
    trainer = make_trainer(cfg, step=step)
    trainer.fit([make_loader(), make_loader(8, 1)], val_loaders=[make_loader(4, 2)])
    rows = read_jsonl(tmp_path)
    keys = set().union(*rows)
    for key in (
        "train/loss",
        "train/extra",
        "train/dl_x/loss",
        "train/dl_y/extra",
        "train/lr/opt_0",
        "train/samples_per_sec",
        "val/loss",
        "val/dl_dl0/loss",
        "profile/train/dl_x/time_data_ms",
        "profile/train/dl_y/time_forward_ms",
        "profile/train/dl_x/time_backward_ms",
        "profile/train/dl_x/time_optimizer_ms",
        "profile/val/dl_dl0/time_data_ms",
        "profile/val/dl_dl0/time_forward_ms",
    ):
        assert key in keys, key
    profile_steps = {row["step"] for row in rows if "profile/train/dl_x/time_data_ms" in row}
    assert profile_steps == {2, 4}
    assert all(row["train/extra"] == 1.5 for row in rows if "train/extra" in row)


def test_log_metrics_takes_tensors_and_numpy_numbers(tmp_path):
    # A NumPy number reached the checkpoint's last metrics: the first save failed with
    # "payload['train_state']['last_metrics']['extra/np'] is a numpy.float32".
    def step(trainer, batch, *args):
        out = mse_step(trainer, batch, *args)
        trainer.log_metrics(
            {"extra/np": np.float32(2.5), "extra/t": out["loss"].detach(), "extra/i": np.int64(3)}
        )
        return out

    result = make_trainer(make_config(tmp_path), step=step).fit([make_loader()], max_epochs=2)
    assert result.status.value == "completed" and result.global_step == 4
    extra = {k: v for k, v in result.metrics.items() if k.startswith("extra/")}
    assert extra["extra/np"] == 2.5 and extra["extra/i"] == 3.0
    assert all(type(v) is float for v in extra.values())


def test_log_metrics_refuses_a_value_that_is_no_number(tmp_path):
    def step(trainer, batch, *args):
        trainer.log_metrics({"extra/name": "abc"})
        return mse_step(trainer, batch, *args)

    with pytest.raises(TypeError, match=r"log_metrics.*'extra/name'.*str"):
        make_trainer(make_config(tmp_path), step=step).fit([make_loader()])


def test_profiling_can_be_switched_off(tmp_path):
    trainer = make_trainer(make_config(tmp_path, profile_training=False))
    trainer.fit([make_loader()], val_loaders=[make_loader(4, 1)])
    assert not any(k.startswith("profile/") for row in read_jsonl(tmp_path) for k in row)


def test_log_loss_every_n_steps_throttles(tmp_path):
    trainer = make_trainer(make_config(tmp_path, log_loss_every_n_steps=3))
    trainer.fit([make_loader(32)], max_epochs=1)
    # 8 steps: every third step, and the epoch's last step (flushed at the epoch end)
    assert [row["step"] for row in read_jsonl(tmp_path) if "train/loss" in row] == [3, 6, 8]


def _train_rows(tmp_path, name="t"):
    return [row for row in read_jsonl(tmp_path, name) if "train/loss" in row]


def test_train_metrics_flush_at_every_epoch_end_without_double_logging(tmp_path):
    losses = []

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
        losses.append(out["loss"].item())
        return out

    # 8 steps per epoch, logging every 4: the epoch ends on a log step, logged once only
    trainer = make_trainer(make_config(tmp_path, name="even", log_loss_every_n_steps=4), step=step)
    trainer.fit([make_loader(32)], max_epochs=2)
    assert [row["step"] for row in _train_rows(tmp_path, "even")] == [4, 8, 12, 16]
    # 8 steps per epoch, logging every 5: points at 5, 8 (epoch end), 10, 15, 16 (epoch end)
    losses.clear()
    trainer = make_trainer(make_config(tmp_path, name="odd", log_loss_every_n_steps=5), step=step)
    trainer.fit([make_loader(32)], max_epochs=2)
    rows = _train_rows(tmp_path, "odd")
    assert [row["step"] for row in rows] == [5, 8, 10, 15, 16]
    assert [row["epoch"] for row in rows] == [0, 0, 1, 1, 1]
    # each point is the mean of the steps since the previous point, none counted twice
    bounds = [0, 5, 8, 10, 15, 16]
    for row, start, stop in zip(rows, bounds[:-1], bounds[1:], strict=True):
        assert row["train/loss"] == pytest.approx(sum(losses[start:stop]) / (stop - start))


def test_train_metrics_flush_when_max_steps_ends_the_run_mid_epoch(tmp_path):
    trainer = make_trainer(make_config(tmp_path, log_loss_every_n_steps=5))
    result = trainer.fit([make_loader(32)], max_epochs=5, max_steps=13)
    assert result.global_step == 13
    rows = _train_rows(tmp_path)
    assert [row["step"] for row in rows] == [5, 8, 10, 13]
    assert result.metrics["train/loss"] == rows[-1]["train/loss"]


def test_early_stopping_on_a_flat_metric(tmp_path):
    def val_step(trainer, batch, *args):
        return {"loss": 1.0}

    cfg = make_config(tmp_path, early_stopping_patience=2, early_stopping_metric="val/loss")
    trainer = make_trainer(cfg)
    trainer.set_validation_step(val_step)
    result = trainer.fit([make_loader()], val_loaders=[make_loader(4, 1)], max_epochs=10)
    assert result.status.value == "early_stopped" and result.epoch == 3


def test_torch_profiler_trace_for_a_chosen_step_range(tmp_path):
    cfg = make_config(
        tmp_path, performance={"profiler_trace_start_step": 2, "profiler_trace_num_steps": 2}
    )
    make_trainer(cfg).fit([make_loader(40)], max_epochs=1)
    traces = sorted((tmp_path / "t" / "profiler").glob("*.json"))
    assert [p.name for p in traces] == ["trace_steps_2-4_rank0.json"]
    events = json.loads(traces[0].read_text())["traceEvents"]
    assert any("aten::" in str(event.get("name", "")) for event in events)


def test_the_trace_keeps_the_dataloader_and_zero_grad_ranges_the_step_skips_otherwise(tmp_path):
    # NOTE [direct fetch], NOTE [clearing gradients]: skipped only while no profiler records
    cfg = make_config(
        tmp_path, performance={"profiler_trace_start_step": 2, "profiler_trace_num_steps": 2}
    )
    make_trainer(cfg).fit([make_loader(40)], max_epochs=1)
    (trace,) = (tmp_path / "t" / "profiler").glob("*.json")
    names = {str(event.get("name", "")) for event in json.loads(trace.read_text())["traceEvents"]}
    assert any("DataLoader" in name for name in names), sorted(names)
    assert any("zero_grad" in name for name in names), sorted(names)


@pytest.mark.parametrize(
    ("every_n", "expected"),
    [(50, [3, 6]), (2, [2, 3, 4, 6]), (3, [3, 6]), (None, [])],
)
def test_profiling_means_are_flushed_at_epoch_ends_once_per_step(tmp_path, every_n, expected):
    # A run shorter than log_scalars_every_n_steps (default 50) logged no profile/train/*
    # metrics at all, while its train loss was flushed at each epoch end.
    cfg = make_config(tmp_path, logging={"log_scalars_every_n_steps": every_n})
    make_trainer(cfg).fit([make_loader(12)], max_epochs=2)
    key = "profile/train/dl_dl0/time_forward_ms"
    steps = [row["step"] for row in read_jsonl(tmp_path) if key in row]
    assert steps == expected  # each step at most once: no double log at a due epoch end


@pytest.mark.parametrize(
    ("every_n", "expected"),
    [(50, [5]), (2, [2, 4, 5]), (5, [5]), (None, [])],
)
def test_profiling_means_are_flushed_at_the_last_step_of_a_max_steps_run(
    tmp_path, every_n, expected
):
    # A max_steps run that ends mid-epoch flushed its train loss at the last step but logged
    # the profiling means of its last partial window nowhere (none at all when shorter than
    # log_scalars_every_n_steps, the default 50).
    cfg = make_config(tmp_path, logging={"log_scalars_every_n_steps": every_n})
    make_trainer(cfg).fit([make_loader(40)], max_steps=5)  # 10 steps per epoch
    key = "profile/train/dl_dl0/time_forward_ms"
    steps = [row["step"] for row in read_jsonl(tmp_path) if key in row]
    assert steps == expected  # each step at most once: no double log when the last step is due
