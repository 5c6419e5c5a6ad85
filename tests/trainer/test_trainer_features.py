"""GenericTrainer behaviour: routing, weights, schedulers, validation, stopping, hooks, errors."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from model_training_framework.errors import CheckpointError, ConfigError, HookError
from model_training_framework.trainer import (
    EpochLengthPolicy,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    TrainerHooks,
    ValAggregation,
    ValidationFrequency,
    WarmStartResult,
)
from model_training_framework.trainer.data.devices import move_to_device


def _data(n, seed, dim=3):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, dim, generator=g), torch.randn(n, 1, generator=g))


def _loader(n=8, seed=0, batch_size=4, **kwargs):
    return DataLoader(_data(n, seed), batch_size=batch_size, **kwargs)


def _config(tmp_path: Path, **changes) -> GenericTrainerConfig:
    loader = changes.pop("loader", {})
    settings = {"checkpoint": {"root_dir": str(tmp_path)}, "log_loss_every_n_steps": 1, **changes}
    return GenericTrainerConfig(
        experiment_name=settings.pop("name", "t"),
        seed=0,
        train_loader_config=MultiDataLoaderConfig(**loader),
        **settings,
    )


def mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head0 = torch.nn.Linear(3, 1)
        self.head1 = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.head0(x) + self.head1(x)


def _trainer(cfg, model=None, optimizers=None, step=mse_step, **kwargs):
    model = model or torch.nn.Linear(3, 1)
    optimizers = optimizers or [torch.optim.SGD(model.parameters(), lr=0.1)]
    trainer = GenericTrainer(cfg, model, optimizers, **kwargs)
    trainer.set_training_step(step)
    trainer.set_validation_step(mse_step)
    return trainer


def _jsonl(tmp_path, name="t"):
    return [
        json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    ]


# ---------------------------------------------------------------- optimizers and gradients
def test_only_the_mapped_optimizer_steps(tmp_path):
    model = TwoHeads()
    opts = [
        torch.optim.SGD(model.head0.parameters(), lr=0.1),
        torch.optim.SGD(model.head1.parameters(), lr=0.1),
    ]
    cfg = _config(tmp_path, per_loader_optimizer_id=[0, 1], loader={"dataloader_names": ["a", "b"]})
    trainer = _trainer(cfg, model, opts)
    head0, head1 = model.head0.weight.clone(), model.head1.weight.clone()
    trainer.fit([_loader(), _loader(8, 1)], max_steps=1)  # round robin: loader a first
    assert not torch.equal(head0, model.head0.weight)
    assert torch.equal(head1, model.head1.weight)


def test_gradients_never_leak_into_a_later_window(tmp_path):
    # GAS 2 with round robin: every window is [a, b] and closes on b, so only optimizer 1 steps;
    # a's gradients on head0 are cleared each window instead of piling up.
    model = TwoHeads()
    opts = [
        torch.optim.SGD(model.head0.parameters(), lr=0.1),
        torch.optim.SGD(model.head1.parameters(), lr=0.1),
    ]
    cfg = _config(
        tmp_path, per_loader_optimizer_id=[0, 1], performance={"gradient_accumulation_steps": 2}
    )
    seen_grads = []

    class Probe(TrainerHooks):
        def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
            seen_grads.append(model.head0.weight.grad)

    trainer = _trainer(cfg, model, opts)
    trainer.add_hook(Probe())
    head0 = model.head0.weight.clone()
    result = trainer.fit([_loader(), _loader(8, 1)], max_epochs=2)
    assert result.global_step == 4
    assert torch.equal(head0, model.head0.weight)
    assert all(g is None for g in seen_grads[::2]), "a window started with leftover gradients"


def test_loss_weights_scale_gradients_before_backward(tmp_path):
    grads = {}
    for weight in (1.0, 3.0):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        class Grab(TrainerHooks):
            def on_before_optimizer_step(self, trainer, optimizer_idx, weight=weight, model=model):
                grads[weight] = model.weight.grad.clone()

        trainer = _trainer(_config(tmp_path / str(weight), loss_weights_per_loader=[weight]), model)
        trainer.add_hook(Grab())
        trainer.fit([_loader()], max_steps=1)
    torch.testing.assert_close(grads[3.0], 3 * grads[1.0])


def test_gradient_accumulation_divides_the_loss(tmp_path):
    grads = {}
    for gas in (1, 2):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        class Grab(TrainerHooks):
            def on_before_optimizer_step(self, trainer, optimizer_idx, gas=gas, model=model):
                grads[gas] = model.weight.grad.clone()

        # one loader of two identical batches: the accumulated gradient equals one batch's
        data = _data(4, 0)
        loader = DataLoader(
            TensorDataset(torch.cat([data.tensors[0]] * 2), torch.cat([data.tensors[1]] * 2)),
            batch_size=4,
        )
        trainer = _trainer(
            _config(tmp_path / str(gas), performance={"gradient_accumulation_steps": gas}), model
        )
        trainer.add_hook(Grab())
        trainer.fit([loader], max_steps=1)
    torch.testing.assert_close(grads[2], grads[1])


def test_clip_grad_norm_bounds_the_update(tmp_path):
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(50.0)
    before = [p.clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = _trainer(_config(tmp_path, performance={"clip_grad_norm": 0.5}), model, [opt])
    trainer.fit([_loader()], max_steps=1)
    delta = torch.sqrt(
        sum(
            ((p.cpu() - b.cpu()) ** 2).sum()
            for p, b in zip(model.parameters(), before, strict=True)
        )
    )
    assert float(delta) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("interval, expected", [("step", 6), ("epoch", 3)])
def test_scheduler_steps_on_its_interval_only(tmp_path, interval, expected):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 0.5**n)
    trainer = _trainer(
        _config(tmp_path), model, [opt], schedulers=[{"scheduler": sched, "interval": interval}]
    )
    trainer.fit([_loader()], max_epochs=3)  # 2 steps per epoch
    assert sched.last_epoch == expected
    lrs = [row["train/lr/opt_0"] for row in _jsonl(tmp_path) if "train/lr/opt_0" in row]
    assert lrs[-1] == pytest.approx(0.5 ** (expected if interval == "step" else 2))


def test_bare_scheduler_defaults_to_step_interval(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    _trainer(_config(tmp_path), model, [opt], schedulers=[sched]).fit([_loader()], max_epochs=2)
    assert sched.last_epoch == 4


def _two_optimizers():
    model = TwoHeads()
    return model, [
        torch.optim.SGD(model.head0.parameters(), lr=1.0),
        torch.optim.SGD(model.head1.parameters(), lr=1.0),
    ]


def test_none_leaves_an_optimizer_without_a_scheduler(tmp_path):
    # With two optimizers a scheduler for the second alone could not be given: [None, s]
    # failed with "schedulers[0] has no step() method: got NoneType".
    model, (opt0, opt1) = _two_optimizers()
    sched = torch.optim.lr_scheduler.StepLR(opt1, step_size=1, gamma=0.5)
    cfg = _config(tmp_path, loader={"dataloader_names": ["a", "b"]}, per_loader_optimizer_id=[0, 1])
    trainer = _trainer(cfg, model, [opt0, opt1], schedulers=[None, sched])
    trainer.fit([_loader(), _loader(8, 1)], max_epochs=1)  # 2 steps of each optimizer
    assert sched.last_epoch == 2
    assert opt0.param_groups[0]["lr"] == 1.0 and opt1.param_groups[0]["lr"] == 0.25


def test_a_scheduler_at_the_index_of_another_optimizer_is_refused(tmp_path):
    # [s] with s built on optimizer 1 was stepped after optimizer 0's steps, silently.
    model, (opt0, opt1) = _two_optimizers()
    sched = torch.optim.lr_scheduler.StepLR(opt1, step_size=1)
    with pytest.raises(ValueError, match=r"schedulers\[0\] follows optimizers\[1\].*\[None, "):
        _trainer(_config(tmp_path), model, [opt0, opt1], schedulers=[sched])


def test_a_scheduler_interval_is_read_in_any_case(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    item = {"scheduler": sched, "interval": "Epoch"}  # as ExperimentConfig.scheduler reads it
    _trainer(_config(tmp_path), model, [opt], schedulers=[item]).fit([_loader()], max_epochs=2)
    assert sched.last_epoch == 2


@pytest.mark.parametrize("interval", [None, "epoch"])
def test_a_scheduler_that_steps_on_a_metric_is_refused_when_the_trainer_is_built(
    tmp_path, interval
):
    # ReduceLROnPlateau failed at the first optimizer step with torch's "step() missing 1
    # required positional argument: 'metrics'".
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    item = plateau if interval is None else {"scheduler": plateau, "interval": interval}
    with pytest.raises(
        TypeError, match=r"schedulers\[0\].*ReduceLROnPlateau.*metric.*on_validation_end"
    ):
        _trainer(_config(tmp_path), model, [opt], schedulers=[item])


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

    trainer = _trainer(_config(tmp_path, validate_every_n_epochs=2), step=train_step)
    trainer.set_validation_step(val_step)
    trainer.fit([_loader()], val_loaders=[_loader(12, 1), _loader(4, 2)], max_epochs=4)
    assert calls == [(0, 0), (0, 1), (0, 2), (1, 0)] * 2  # epochs 2 and 4
    assert not any(modes) and all(train_modes)


def test_step_based_validation(tmp_path):
    cfg = _config(
        tmp_path, validation={"frequency": ValidationFrequency.EVERY_N_STEPS, "every_n_steps": 3}
    )
    trainer = _trainer(cfg)
    trainer.fit([_loader(24)], val_loaders=[_loader(4, 1)], max_epochs=1)
    steps = [row["step"] for row in _jsonl(tmp_path) if "val/loss" in row]
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

    trainer = _trainer(_config(tmp_path, validation={"aggregation": aggregation}))
    trainer.set_validation_step(val_step)
    result = trainer.fit([_loader()], val_loaders=[_loader(8, 1), _loader(2, 2)])
    assert result.metrics["val/dl_dl0/loss"] == 2.0 and result.metrics["val/dl_dl1/loss"] == 4.0
    assert result.metrics["val/loss"] == pytest.approx(expected)


def test_custom_aggregation_function(tmp_path):
    def worst(per_loader):
        return {"worst_loss": max(m["loss"] for m in per_loader.values())}

    cfg = _config(tmp_path, validation={"aggregation": "custom", "aggregation_fn": worst})
    trainer = _trainer(cfg)
    result = trainer.fit([_loader()], val_loaders=[_loader(8, 1), _loader(4, 2)])
    per_loader = [result.metrics["val/dl_dl0/loss"], result.metrics["val/dl_dl1/loss"]]
    assert result.metrics["val/worst_loss"] == max(per_loader)


def test_metric_keys_in_jsonl(tmp_path):
    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
        out["extra"] = 1.5
        return out

    cfg = _config(
        tmp_path, loader={"dataloader_names": ["x", "y"]}, logging={"log_scalars_every_n_steps": 2}
    )
    trainer = _trainer(cfg, step=step)
    trainer.fit([_loader(), _loader(8, 1)], val_loaders=[_loader(4, 2)])
    rows = _jsonl(tmp_path)
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

    result = _trainer(_config(tmp_path), step=step).fit([_loader()], max_epochs=2)
    assert result.status.value == "completed" and result.global_step == 4
    extra = {k: v for k, v in result.metrics.items() if k.startswith("extra/")}
    assert extra["extra/np"] == 2.5 and extra["extra/i"] == 3.0
    assert all(type(v) is float for v in extra.values())


def test_log_metrics_refuses_a_value_that_is_no_number(tmp_path):
    def step(trainer, batch, *args):
        trainer.log_metrics({"extra/name": "abc"})
        return mse_step(trainer, batch, *args)

    with pytest.raises(TypeError, match=r"log_metrics.*'extra/name'.*str"):
        _trainer(_config(tmp_path), step=step).fit([_loader()])


def test_profiling_can_be_switched_off(tmp_path):
    trainer = _trainer(_config(tmp_path, profile_training=False))
    trainer.fit([_loader()], val_loaders=[_loader(4, 1)])
    assert not any(k.startswith("profile/") for row in _jsonl(tmp_path) for k in row)


def test_log_loss_every_n_steps_throttles(tmp_path):
    trainer = _trainer(_config(tmp_path, log_loss_every_n_steps=3))
    trainer.fit([_loader(32)], max_epochs=1)
    # 8 steps: every third step, and the epoch's last step (flushed at the epoch end)
    assert [row["step"] for row in _jsonl(tmp_path) if "train/loss" in row] == [3, 6, 8]


def _train_rows(tmp_path, name="t"):
    return [row for row in _jsonl(tmp_path, name) if "train/loss" in row]


def test_train_metrics_flush_at_every_epoch_end_without_double_logging(tmp_path):
    losses = []

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
        losses.append(out["loss"].item())
        return out

    # 8 steps per epoch, logging every 4: the epoch ends on a log step, logged once only
    trainer = _trainer(_config(tmp_path, name="even", log_loss_every_n_steps=4), step=step)
    trainer.fit([_loader(32)], max_epochs=2)
    assert [row["step"] for row in _train_rows(tmp_path, "even")] == [4, 8, 12, 16]
    # 8 steps per epoch, logging every 5: points at 5, 8 (epoch end), 10, 15, 16 (epoch end)
    losses.clear()
    trainer = _trainer(_config(tmp_path, name="odd", log_loss_every_n_steps=5), step=step)
    trainer.fit([_loader(32)], max_epochs=2)
    rows = _train_rows(tmp_path, "odd")
    assert [row["step"] for row in rows] == [5, 8, 10, 15, 16]
    assert [row["epoch"] for row in rows] == [0, 0, 1, 1, 1]
    # each point is the mean of the steps since the previous point, none counted twice
    bounds = [0, 5, 8, 10, 15, 16]
    for row, start, stop in zip(rows, bounds[:-1], bounds[1:], strict=True):
        assert row["train/loss"] == pytest.approx(sum(losses[start:stop]) / (stop - start))


def test_train_metrics_flush_when_max_steps_ends_the_run_mid_epoch(tmp_path):
    trainer = _trainer(_config(tmp_path, log_loss_every_n_steps=5))
    result = trainer.fit([_loader(32)], max_epochs=5, max_steps=13)
    assert result.global_step == 13
    rows = _train_rows(tmp_path)
    assert [row["step"] for row in rows] == [5, 8, 10, 13]
    assert result.metrics["train/loss"] == rows[-1]["train/loss"]


def test_early_stopping_on_a_flat_metric(tmp_path):
    def val_step(trainer, batch, *args):
        return {"loss": 1.0}

    cfg = _config(tmp_path, early_stopping_patience=2, early_stopping_metric="val/loss")
    trainer = _trainer(cfg)
    trainer.set_validation_step(val_step)
    result = trainer.fit([_loader()], val_loaders=[_loader(4, 1)], max_epochs=10)
    assert result.status.value == "early_stopped" and result.epoch == 3


# ---------------------------------------------------------------- hooks and non-finite losses
def test_failing_hook_stops_training_with_its_name(tmp_path):
    class Broken(TrainerHooks):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise RuntimeError("boom")

    trainer = _trainer(_config(tmp_path))
    trainer.add_hook(Broken())
    with pytest.raises(HookError, match=r"Broken\.on_epoch_end"):
        trainer.fit([_loader()], max_epochs=2)


def test_failing_hook_can_be_logged_and_skipped(tmp_path, caplog):
    class Broken(TrainerHooks):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise RuntimeError("boom")

    trainer = _trainer(_config(tmp_path, hooks={"continue_on_hook_error": True}))
    trainer.add_hook(Broken())
    assert trainer.fit([_loader()], max_epochs=2).status.value == "completed"
    assert "Broken" in caplog.text


class _ExtraEntry(TrainerHooks):
    """Adds its own entry to every checkpoint and reads it back on resume (the documented use
    of on_checkpoint_save / on_checkpoint_load)."""

    def __init__(self) -> None:
        self.loaded = None

    def on_checkpoint_save(self, trainer, checkpoint):
        checkpoint["my_entry"] = {"step": trainer.global_step, "table": torch.arange(3)}

    def on_checkpoint_load(self, trainer, checkpoint):
        self.loaded = checkpoint["my_entry"]


def test_an_entry_added_by_on_checkpoint_save_reaches_on_checkpoint_load(tmp_path):
    # The resume used to refuse the checkpoint: "holds ['my_entry'] that nothing in this run
    # restores".
    trainer = _trainer(_config(tmp_path))
    trainer.add_hook(_ExtraEntry())
    trainer.fit([_loader()], max_epochs=1)
    resumed, hook = _trainer(_config(tmp_path)), _ExtraEntry()
    resumed.add_hook(hook)
    assert resumed.fit([_loader()], max_epochs=2).global_step == 4
    assert hook.loaded["step"] == 2 and torch.equal(hook.loaded["table"], torch.arange(3))


def test_an_entry_a_hook_added_needs_no_hook_to_resume(tmp_path):
    trainer = _trainer(_config(tmp_path))
    trainer.add_hook(_ExtraEntry())
    trainer.fit([_loader()], max_epochs=1)
    assert _trainer(_config(tmp_path)).fit([_loader()], max_epochs=2).global_step == 4


def _nan_on_second_batch(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    out = mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
    if batch_idx == 1:
        out["loss"] = out["loss"] * float("nan")
    return out


def test_nonfinite_loss_raises_by_default(tmp_path):
    trainer = _trainer(_config(tmp_path), step=_nan_on_second_batch)
    with pytest.raises(FloatingPointError, match="on_nonfinite_loss"):
        trainer.fit([_loader()])


def test_nonfinite_loss_can_be_skipped_and_counted(tmp_path):
    model = torch.nn.Linear(3, 1)
    trainer = _trainer(
        _config(tmp_path, on_nonfinite_loss="skip"), model, step=_nan_on_second_batch
    )
    result = trainer.fit([_loader()], max_epochs=2)
    assert result.metrics["train/skipped_nonfinite"] == 2.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ------------------------------------------- bad input: clear errors before any step or file write
def test_a_missing_train_loader_config_reads_the_same_at_construction_and_at_fit(tmp_path):
    expected = (
        "train_loader_config: MultiDataLoaderConfig not provided; it is required, even for one "
        "loader: GenericTrainerConfig(train_loader_config="
        "MultiDataLoaderConfig(dataloader_names=['main']))"
    )
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ConfigError) as at_construction:
        GenericTrainer(GenericTrainerConfig(), model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    assert str(at_construction.value) == expected

    cfg = _config(tmp_path)
    trainer = _trainer(cfg)
    cfg.train_loader_config = None  # removed after construction: fit says the same
    with pytest.raises(ConfigError) as at_fit:
        trainer.fit([_loader()])
    assert str(at_fit.value) == expected
    assert not (tmp_path / "t").exists()


def test_input_errors_before_any_step(tmp_path):
    cfg = _config(tmp_path, loader={"dataloader_names": ["a", "b"]})
    trainer = _trainer(cfg)
    with pytest.raises(ValueError, match="dataloader_names"):
        trainer.fit([_loader()])
    cfg2 = _config(tmp_path, per_loader_optimizer_id=[0, 1])
    with pytest.raises(ValueError, match="per_loader_optimizer_id"):
        _trainer(cfg2).fit([_loader()])
    cfg3 = _config(tmp_path, per_loader_optimizer_id=[3])
    with pytest.raises(ValueError, match="optimizer 3"):
        _trainer(cfg3).fit([_loader()])
    with pytest.raises(ValueError, match="loss_weights_per_loader"):
        _trainer(_config(tmp_path, loss_weights_per_loader=[1.0, 2.0])).fit([_loader()])
    with pytest.raises(ValueError, match="empty"):
        _trainer(_config(tmp_path)).fit([DataLoader(_data(2, 0), batch_size=4, drop_last=True)])
    with pytest.raises(ValueError, match="empty list"):
        _trainer(_config(tmp_path)).fit([])
    model = torch.nn.Linear(3, 1)
    bare = GenericTrainer(_config(tmp_path), model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    with pytest.raises(ValueError, match="set_training_step"):
        bare.fit([_loader()])
    assert not (tmp_path / "t").exists(), "nothing may be written before the checks pass"


@pytest.mark.parametrize(
    "limits",
    [{"max_epochs": None, "max_steps": 3}, {"max_epochs": 1.5}, {"max_steps": "10"}],
)
def test_limits_that_are_not_whole_numbers_are_a_clear_error(tmp_path, limits):
    # max_epochs=None (as in Lightning, to train by max_steps alone) used to fail with
    # "'<' not supported between instances of 'NoneType' and 'int'".
    with pytest.raises(TypeError, match=r"max_epochs must be an int >= 1.*max_steps"):
        _trainer(_config(tmp_path)).fit([_loader()], **limits)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    "returned, match",
    [
        (lambda loss: loss, "dict"),
        (lambda loss: {"loss": 1.0}, "loss"),
        (lambda loss: {"loss": loss.detach()}, "require grad"),
    ],
)
def test_bad_training_step_results(tmp_path, returned, match):
    def step(trainer, batch, *args):
        return returned(mse_step(trainer, batch, *args)["loss"])

    with pytest.raises(TypeError, match=match):
        _trainer(_config(tmp_path), step=step).fit([_loader()])


@pytest.mark.parametrize("returned", [lambda loss: loss, lambda loss: [loss], lambda loss: 1.0])
def test_a_validation_step_that_returns_no_dict_is_a_clear_error(tmp_path, returned):
    # A bare loss tensor (as Lightning's validation_step returns) used to fail inside the
    # metric code with "'Tensor' object has no attribute 'items'".
    def step(trainer, batch, *args):
        return returned(mse_step(trainer, batch, *args)["loss"])

    trainer = _trainer(_config(tmp_path))
    trainer.set_validation_step(step)
    with pytest.raises(TypeError, match=r"validation_step must return a dict of metrics.*"):
        trainer.fit([_loader()], [_loader()])


class _Stream(IterableDataset):
    def __init__(self, n=20):
        self.n, self.position = n, 0

    def __iter__(self):
        while self.position < self.n:
            i = self.position
            self.position += 1
            yield torch.full((3,), float(i)), torch.zeros(1)

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


class _PlainStream(_Stream):
    state_dict = None  # type: ignore[assignment]
    load_state_dict = None  # type: ignore[assignment]


def test_iterable_loader_needs_a_fixed_epoch_length(tmp_path):
    with pytest.raises(ValueError, match="FIXED_NUM_STEPS"):
        _trainer(_config(tmp_path)).fit([DataLoader(_Stream(), batch_size=2)])


class _SevensLoader(DataLoader):
    """A user's DataLoader subclass whose own __iter__ changes the batches."""

    def __iter__(self):
        for x, y in super().__iter__():
            yield torch.full_like(x, 7.0), y


class _NamedLoader(DataLoader):
    """A subclass that only adds an attribute: its batches are the DataLoader's."""

    def __init__(self, *args, name="main", **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name


def test_a_train_loader_subclass_with_its_own_iter_is_refused(tmp_path):
    # Its __iter__ was silently bypassed (the trainer reads the dataset through its own
    # DataLoader), so the steps trained on other batches than the loader yields.
    seen = []

    def step(trainer, batch, *args):
        seen.append(float(batch[0].mean()))
        return mse_step(trainer, batch, *args)

    with pytest.raises(TypeError, match=r"train_loaders\[0\] is a _SevensLoader.*__iter__"):
        _trainer(_config(tmp_path), step=step).fit([_SevensLoader(_data(8, 0), batch_size=4)])
    assert seen == []
    assert not (tmp_path / "t").exists()
    result = _trainer(_config(tmp_path)).fit([_NamedLoader(_data(8, 0), batch_size=4)])
    assert result.global_step == 2


def test_iterable_validation_loader_is_refused_before_any_training_step(tmp_path):
    # It was refused at the first validation, after a whole epoch of training, by a message
    # that did not say it was about a validation loader.
    trained = []

    def step(trainer, batch, *args):
        trained.append(1)
        return mse_step(trainer, batch, *args)

    trainer = _trainer(_config(tmp_path), step=step)
    with pytest.raises(ValueError, match=r"val_loader_config: .*no length.*FIXED_NUM_STEPS"):
        trainer.fit([_loader()], [DataLoader(_Stream(), batch_size=2)])
    assert trained == []


def test_iterable_validation_loaders_run_dry_under_a_fixed_epoch_length(tmp_path):
    seen = []

    def count(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        seen.append((dataloader_idx, len(batch[0])))
        return mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)

    config = _config(
        tmp_path,
        val_loader_config={
            "epoch_length_policy": "fixed_num_steps",
            "steps_per_epoch": 100,
            "cycle_short_loaders": False,
        },
    )
    trainer = _trainer(config)
    trainer.set_validation_step(count)
    val = [DataLoader(_Stream(5), batch_size=2), DataLoader(_Stream(3), batch_size=2)]
    trainer.fit([_loader()], val, max_epochs=1)
    assert seen == [(0, 2), (0, 2), (0, 1), (1, 2), (1, 1)]  # each sample once


def test_iterable_without_resume_protocol_is_refused_unless_allowed(tmp_path):
    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 3}
    with pytest.raises(ValueError, match="require_resumable_iterables"):
        _trainer(_config(tmp_path, loader=loader_cfg)).fit(
            [DataLoader(_PlainStream(), batch_size=2)]
        )
    cfg = _config(
        tmp_path,
        name="ok",
        loader=loader_cfg,
        fault_tolerance={"require_resumable_iterables": False},
    )
    assert _trainer(cfg).fit([DataLoader(_PlainStream(), batch_size=2)]).global_step == 3


def test_stateful_iterable_resumes_where_it_stopped(tmp_path):
    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 4}
    seen = []

    def step(trainer, batch, *args):
        seen.append(int(batch[0][0, 0]))
        return mse_step(trainer, batch, *args)

    _trainer(_config(tmp_path, loader=loader_cfg), step=step).fit(
        [DataLoader(_Stream(), batch_size=2)], max_epochs=2, max_steps=3
    )
    _trainer(_config(tmp_path, loader=loader_cfg), step=step).fit(
        [DataLoader(_Stream(), batch_size=2)], max_epochs=2
    )
    assert seen == [0, 2, 4, 6, 8, 10, 12, 14]


# ---------------------------------------------------------------- devices, warm start, resume errors
@dataclass
class _Pair:
    x: torch.Tensor
    meta: str


def test_batches_are_moved_through_nested_containers():
    batch = {"a": (torch.zeros(2), [torch.ones(1)]), "b": _Pair(torch.zeros(3), "keep"), "c": 5}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["a"][0].is_meta and moved["a"][1][0].is_meta and moved["b"].x.is_meta
    assert moved["b"].meta == "keep" and moved["c"] == 5 and isinstance(moved["a"], tuple)


def test_warm_start_loads_weights_only_when_starting_fresh(tmp_path):
    source = torch.nn.Linear(3, 1)
    calls = []

    def warm(trainer, path):
        calls.append(path)
        return WarmStartResult(source.state_dict())

    model = torch.nn.Linear(3, 1)
    trainer = _trainer(_config(tmp_path), model)
    trainer.set_warm_start_loader(warm)
    seen_start = []

    class Probe(TrainerHooks):
        def on_train_start(self, trainer):
            seen_start.append(torch.equal(trainer.unwrapped_model.weight.cpu(), source.weight))

    trainer.add_hook(Probe())
    trainer.fit([_loader()], max_epochs=1)
    assert seen_start == [True] and len(calls) == 1
    again = _trainer(_config(tmp_path), torch.nn.Linear(3, 1))
    again.set_warm_start_loader(warm)
    again.fit([_loader()], max_epochs=2)  # resumes: no warm start
    assert len(calls) == 1


def test_checkpoint_of_a_different_model_shape_is_a_clear_error(tmp_path):
    _trainer(_config(tmp_path)).fit([_loader()], max_epochs=1)
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not fit this run") as caught:
        _trainer(_config(tmp_path), model).fit([_loader()], max_epochs=2)
    assert "model.weight: [1, 3] -> [2, 3]" in str(caught.value)
    assert "model.bias: [1] -> [2]" in str(caught.value)


def test_corrupt_latest_checkpoint_falls_back_to_an_older_one(tmp_path, caplog):
    cfg = _config(tmp_path, checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 1})
    _trainer(cfg).fit([_loader()], max_epochs=1)
    newest = sorted((tmp_path / "t").glob("epoch_*_step_2.ckpt"))
    assert newest
    for path in newest:
        path.write_bytes(path.read_bytes()[:100])
    trainer = _trainer(
        _config(tmp_path, checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 1})
    )
    seen = []
    trainer.set_training_step(lambda t, b, *a: seen.append(a[0]) or mse_step(t, b, *a))
    result = trainer.fit([_loader()], max_epochs=1)
    assert "step_2" in caplog.text and result.global_step == 2 and seen == [1]


def test_explicit_corrupt_checkpoint_raises(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        _trainer(_config(tmp_path)).fit([_loader()], resume_from_checkpoint=bad)


def test_update_loader_weights_takes_effect_mid_run(tmp_path):
    counts = [0, 0]

    class Switch(TrainerHooks):
        def on_after_optimizer_step(self, trainer, optimizer_idx):
            if trainer.global_step == 10:
                trainer.update_loader_weights([0.0001, 1.0])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if trainer.global_step >= 10:
            counts[dataloader_idx] += 1
        return mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)

    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 0.0001],
        "epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS,
        "steps_per_epoch": 20,
    }
    trainer = _trainer(_config(tmp_path, loader=loader_cfg), step=step)
    trainer.add_hook(Switch())
    trainer.fit([_loader(), _loader(8, 1)], max_epochs=1)
    assert counts[1] >= 9


def test_weights_set_by_a_hook_are_kept_by_the_schedule_across_a_resume(tmp_path):
    class Curriculum(TrainerHooks):
        def on_train_start(self, trainer):
            trainer.update_loader_weights([1.0, 3.0])

    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 1.0],
        "dataloader_names": ["a", "b"],
    }
    cfg = _config(tmp_path, loader=loader_cfg)
    first = _trainer(cfg)
    first.add_hook(Curriculum())
    first.fit([_loader(16), _loader(16, 1)], max_epochs=1)
    assert cfg.train_loader_config.dataloader_weights == [1.0, 1.0]  # the user's config

    # The same config without the hook: the checkpoint's schedule keeps the hook's weights.
    result = _trainer(_config(tmp_path, loader=loader_cfg)).fit(
        [_loader(16), _loader(16, 1)], max_epochs=2
    )
    assert result.epoch == 2
    assert result.metrics["train/loader_share/dl_b"] == 0.75  # 6 of the epoch's 8 batches
    assert result.metrics["train/loader_share_target/dl_b"] == 0.75


def test_weights_set_before_fit_are_the_ones_the_fit_starts_with(tmp_path):
    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 1.0],
        "dataloader_names": ["a", "b"],
    }
    cfg = _config(tmp_path, loader=loader_cfg)
    trainer = _trainer(cfg)
    trainer.update_loader_weights([3.0, 1.0])

    result = trainer.fit([_loader(16), _loader(16, 1)], max_epochs=1)
    assert result.metrics["train/loader_share/dl_a"] == 0.75
    assert cfg.train_loader_config.dataloader_weights == [1.0, 1.0]


def test_weights_set_before_fit_of_a_schedule_without_weights_are_an_error(tmp_path):
    # Called during fit this raised; called before fit the weights were silently ignored.
    trainer = _trainer(_config(tmp_path, loader={"dataloader_names": ["a", "b"]}))
    trainer.update_loader_weights([3.0, 1.0])
    with pytest.raises(ValueError, match=r"update_loader_weights.*WEIGHTED.*ROUND_ROBIN"):
        trainer.fit([_loader(16), _loader(16, 1)], max_epochs=1)
    assert not (tmp_path / "t").exists()


def test_max_steps_stops_mid_epoch(tmp_path):
    result = _trainer(_config(tmp_path)).fit([_loader(40)], max_epochs=5, max_steps=7)
    assert result.global_step == 7 and result.epoch == 0 and result.status.value == "completed"
    assert math.isfinite(result.metrics["train/loss"])


def test_torchdata_stateful_dataloader_is_accepted_as_is(tmp_path):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")

    class Plain(IterableDataset):
        def __iter__(self):
            for i in range(40):
                yield torch.full((3,), float(i)), torch.zeros(1)

    loader_cfg = {"epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS, "steps_per_epoch": 5}

    def run(name, max_steps, seen):
        def step(trainer, batch, *args):
            seen.append(int(batch[0][0, 0]))
            return mse_step(trainer, batch, *args)

        torch.manual_seed(0)
        loaders = [
            stateful.StatefulDataLoader(Plain(), batch_size=2),
            stateful.StatefulDataLoader(_data(10, 1), batch_size=2, shuffle=True),
        ]
        _trainer(_config(tmp_path, name=name, loader=loader_cfg), step=step).fit(
            loaders, max_epochs=3, max_steps=max_steps
        )

    full, split = [], []
    run("full", None, full)
    run("split", 6, split)
    run("split", None, split)
    assert split == full and len(full) == 15


def test_warm_start_from_config_dotted_path(tmp_path, monkeypatch):
    import sys
    import types

    source = torch.nn.Linear(3, 1)
    module = types.ModuleType("warm_fixture_mod")

    def load(trainer, path):
        assert path == "weights.pt"
        return WarmStartResult(source.state_dict(), strict=True)

    module.load = load
    monkeypatch.setitem(sys.modules, "warm_fixture_mod", module)
    model = torch.nn.Linear(3, 1)
    cfg = _config(
        tmp_path,
        warm_start={"loader_class": "warm_fixture_mod.load", "checkpoint_path": "weights.pt"},
    )
    seen = []

    class Probe(TrainerHooks):
        def on_train_start(self, trainer):
            seen.append(torch.equal(trainer.unwrapped_model.weight.cpu(), source.weight))

    trainer = _trainer(cfg, model)
    trainer.add_hook(Probe())
    trainer.fit([_loader()])
    assert seen == [True]


def test_torch_profiler_trace_for_a_chosen_step_range(tmp_path):
    cfg = _config(
        tmp_path, performance={"profiler_trace_start_step": 2, "profiler_trace_num_steps": 2}
    )
    _trainer(cfg).fit([_loader(40)], max_epochs=1)
    traces = sorted((tmp_path / "t" / "profiler").glob("*.json"))
    assert [p.name for p in traces] == ["trace_steps_2-4_rank0.json"]
    events = json.loads(traces[0].read_text())["traceEvents"]
    assert any("aten::" in str(event.get("name", "")) for event in events)


def test_the_trace_keeps_the_dataloader_and_zero_grad_ranges_the_step_skips_otherwise(tmp_path):
    # NOTE [direct fetch], NOTE [clearing gradients]: skipped only while no profiler records
    cfg = _config(
        tmp_path, performance={"profiler_trace_start_step": 2, "profiler_trace_num_steps": 2}
    )
    _trainer(cfg).fit([_loader(40)], max_epochs=1)
    (trace,) = (tmp_path / "t" / "profiler").glob("*.json")
    names = {str(event.get("name", "")) for event in json.loads(trace.read_text())["traceEvents"]}
    assert any("DataLoader" in name for name in names), sorted(names)
    assert any("zero_grad" in name for name in names), sorted(names)


def test_before_optimizer_step_hook_sees_the_clipped_gradients(tmp_path):
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(50.0)
    norms = []

    class GradNorm(TrainerHooks):
        def on_before_optimizer_step(self, trainer, optimizer_idx):
            grads = [p.grad for p in trainer.unwrapped_model.parameters()]
            norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))

    trainer = _trainer(_config(tmp_path, performance={"clip_grad_norm": 0.5}), model)
    trainer.add_hook(GradNorm())
    trainer.fit([_loader()], max_steps=2)
    assert norms and all(n == pytest.approx(0.5, rel=1e-4) for n in norms), norms


def test_a_plain_api_resume_is_announced_on_the_console_by_default(tmp_path, capsys):
    loader = _loader(n=16)
    _trainer(_config(tmp_path, log_loss_every_n_steps=50)).fit([loader], max_steps=2)
    assert "resumed from" not in capsys.readouterr().err
    result = _trainer(_config(tmp_path, log_loss_every_n_steps=50)).fit([loader], max_steps=4)
    err = capsys.readouterr().err
    assert result.global_step == 4
    assert f"resumed from {tmp_path / 't' / 'epoch_0_step_2.ckpt'}" in err, err
    assert "at epoch 0, step 2" in err, err


@pytest.mark.parametrize(
    ("loader", "ignored", "applies"),
    [
        ({"steps_per_epoch": 10}, "steps_per_epoch=10", "epoch_length_policy 'fixed_num_steps'"),
        ({"dataloader_weights": [1.0, 2.0]}, "dataloader_weights=[1.0, 2.0]", "'weighted'"),
        ({"alternating_pattern": [0, 1]}, "alternating_pattern=[0, 1]", "'alternating'"),
        ({"sampling_strategy": "sequential", "burst_size": 3}, "burst_size=3", "'sequential'"),
    ],
)
def test_a_loader_setting_the_schedule_ignores_is_named_in_a_warning(
    tmp_path, caplog, loader, ignored, applies
):
    # They trained as if unset, silently (e.g. steps_per_epoch under sum_of_lengths).
    trainer = _trainer(_config(tmp_path, loader=loader))
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        trainer.fit([_loader(), _loader(8, 1)], max_epochs=1)
    warned = [r.getMessage() for r in caplog.records if ignored in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("train_loader_config.")
    assert "has no effect" in warned[0] and applies in warned[0]


def test_loader_settings_in_use_do_not_warn(tmp_path, caplog):
    loader = {"sampling_strategy": "weighted", "dataloader_weights": [1.0, 2.0], "burst_size": 2}
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        _trainer(_config(tmp_path, loader=loader)).fit([_loader(), _loader(8, 1)], max_epochs=1)
    assert not [r for r in caplog.records if "has no effect" in r.getMessage()]
