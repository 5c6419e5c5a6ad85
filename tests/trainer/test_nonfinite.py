"""Non-finite losses and gradients: found without a host read per step, never checkpointed.

Every test runs with both guards: the accelerator's (device tensors read at log steps and saves)
and the CPU's (values read as they come, see NOTE [host reads on the CPU]); the CPU's is the
default for these CPU runs, the accelerator's is forced by emptying HOST_READ_DEVICE_TYPES.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.metrics.running import TrainMetrics
from model_training_framework.trainer.optim import nonfinite, precision
from model_training_framework.trainer.state.file_format import read_checkpoint

# Tensor methods that copy a value to the host (a device sync on a GPU).
_HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.__complex__,
    torch.Tensor.__array__,
    torch.Tensor.__format__,
    torch.Tensor.nonzero,
}


class HostReadCountingTensor(torch.Tensor):
    """A tensor subclass that counts reads of its values (and of tensors computed from it)."""

    reads: ClassVar[list[str]] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _HOST_READS:
            cls.reads.append(func.__name__)
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.fixture(autouse=True, params=["accelerator_guard", "cpu_guard"])
def guard_kind(request, monkeypatch) -> str:
    """Run the test with the accelerator's guard (forced on the CPU) and with the CPU's."""
    if request.param == "accelerator_guard":
        monkeypatch.setattr(nonfinite, "HOST_READ_DEVICE_TYPES", frozenset())
    return request.param


def _loader(n=40, batch_size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g))
    return DataLoader(data, batch_size=batch_size)


def _config(tmp_path: Path, **changes) -> GenericTrainerConfig:
    settings = {"checkpoint": {"root_dir": str(tmp_path)}, **changes}
    return GenericTrainerConfig(
        experiment_name="run", seed=0, train_loader_config=MultiDataLoaderConfig(), **settings
    )


def _trainer(cfg, step, model=None):
    model = model or torch.nn.Linear(3, 1)
    trainer = GenericTrainer(cfg, model, [torch.optim.SGD(model.parameters(), lr=0.05)])
    trainer.set_training_step(step)
    return trainer


def _mse(trainer, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(trainer.model(x), y)


def _nan_gradient_at(*bad_steps):
    """A step whose loss stays finite but whose gradients are NaN at the given global steps:
    ``sqrt(|0 * w|)`` is 0, its gradient 0 * inf = NaN."""

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        loss = _mse(trainer, batch)
        if trainer.global_step + 1 in bad_steps:
            weight = trainer.unwrapped_model.weight
            loss = loss + torch.sqrt(torch.abs(weight.sum() * 0))
        return {"loss": loss}

    return step


def _nan_loss_at(*bad_steps):
    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        loss = _mse(trainer, batch)
        if trainer.global_step + 1 in bad_steps:
            loss = loss * float("nan")
        return {"loss": loss}

    return step


def _saved_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in run_dir.glob("epoch_*_step_*.ckpt"))


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


# ---------------------------------------------------------------- no host read per step
def _count_loss_reads(tmp_path) -> tuple[list[str], dict[str, float]]:
    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        return {"loss": _mse(trainer, batch).as_subclass(HostReadCountingTensor)}

    HostReadCountingTensor.reads = []
    cfg = _config(tmp_path, log_loss_every_n_steps=100)
    result = _trainer(cfg, step).fit([_loader(1200)], max_steps=300)
    assert result.global_step == 300
    return HostReadCountingTensor.reads, result.metrics


def test_the_loss_is_read_to_the_host_only_at_logging_steps(tmp_path, guard_kind):
    """The default on an accelerator: no host read (a device sync there) per step."""
    reads, metrics = _count_loss_reads(tmp_path)
    if guard_kind == "accelerator_guard":
        # 3 logging steps (100, 200, 300) and the final checkpoint at 300: the finiteness check
        # and the metric means read once each per check; never once per step.
        assert 0 < len(reads) <= 3 * 3, reads
    else:  # on the CPU a read is no sync: each loss is read once, when it comes
        assert reads == ["item"] * 300
    assert "train/loss" in metrics


def test_both_guards_log_the_same_means(tmp_path, monkeypatch):
    def fit(root: Path) -> dict[str, float]:
        cfg = _config(root, log_loss_every_n_steps=7)
        return _trainer(cfg, _nan_loss_at()).fit([_loader(80)], max_steps=30).metrics

    monkeypatch.setattr(nonfinite, "HOST_READ_DEVICE_TYPES", frozenset({"cpu"}))
    on_cpu = fit(tmp_path / "cpu")
    monkeypatch.setattr(nonfinite, "HOST_READ_DEVICE_TYPES", frozenset())
    on_accelerator = fit(tmp_path / "accelerator")
    assert on_cpu["train/loss"] == on_accelerator["train/loss"]


# ---------------------------------------------------------------- on_nonfinite_loss="raise"
def test_nan_gradient_with_finite_loss_stops_before_any_checkpoint_holds_it(tmp_path):
    cfg = _config(
        tmp_path,
        log_loss_every_n_steps=100,
        check_nonfinite_gradients=True,
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 5, "max_checkpoints": 10},
    )
    with pytest.raises(FloatingPointError, match=r"gradients not finite at global step 7\b"):
        _trainer(cfg, _nan_gradient_at(7)).fit([_loader()], max_steps=20, max_epochs=5)
    run_dir = tmp_path / "run"
    assert _saved_steps(run_dir) == [5], "the save at step 10 must be refused"
    payload = read_checkpoint(run_dir / "latest.ckpt")
    assert _all_finite(payload["model"])

    # A rerun without the fault resumes from the last finite checkpoint and finishes.
    rerun = _trainer(cfg, _nan_gradient_at()).fit([_loader()], max_steps=20, max_epochs=5)
    assert rerun.status.value == "completed" and rerun.global_step == 20
    assert _all_finite(read_checkpoint(run_dir / "latest.ckpt")["model"])


def test_the_error_names_the_first_nonfinite_step_of_the_interval(tmp_path):
    cfg = _config(tmp_path, log_loss_every_n_steps=10)
    with pytest.raises(FloatingPointError, match=r"loss not finite at global step 3\b.*step 10"):
        _trainer(cfg, _nan_loss_at(3, 4, 8)).fit([_loader()], max_steps=20, max_epochs=5)
    assert _saved_steps(tmp_path / "run") == []


def test_a_bad_step_is_found_at_the_next_checkpoint_save_before_the_next_log_step(tmp_path):
    cfg = _config(
        tmp_path,
        log_loss_every_n_steps=50,
        check_nonfinite_gradients=True,
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 4},
    )
    with pytest.raises(FloatingPointError, match=r"gradients not finite at global step 6\b"):
        _trainer(cfg, _nan_gradient_at(6)).fit([_loader()], max_steps=20, max_epochs=5)
    assert _saved_steps(tmp_path / "run") == [4]


# Defaults: no per-step gradient pass (it read and wrote every gradient each step, about 7 % of
# a large model's step on a GPU). NaN gradients behind a finite loss make the next step's loss
# NaN, named there; right before a save, the save's own finiteness check refuses the weights.
def test_by_default_nan_gradients_show_up_as_the_next_steps_loss(tmp_path):
    cfg = _config(
        tmp_path,
        log_loss_every_n_steps=100,
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 5, "max_checkpoints": 10},
    )
    with pytest.raises(
        FloatingPointError, match=r"loss not finite at global step 8\b.*check_nonfinite_gradients"
    ):
        _trainer(cfg, _nan_gradient_at(7)).fit([_loader()], max_steps=20, max_epochs=5)
    run_dir = tmp_path / "run"
    assert _saved_steps(run_dir) == [5], "the save at step 10 must be refused"
    assert _all_finite(read_checkpoint(run_dir / "latest.ckpt")["model"])


def test_by_default_nan_gradients_right_before_a_save_are_refused_by_the_save(tmp_path):
    cfg = _config(
        tmp_path,
        log_loss_every_n_steps=100,
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 5, "max_checkpoints": 10},
    )
    with pytest.raises(CheckpointError, match=r"NaN or infinite"):
        _trainer(cfg, _nan_gradient_at(10)).fit([_loader()], max_steps=20, max_epochs=5)
    run_dir = tmp_path / "run"
    assert _saved_steps(run_dir) == [5]
    assert _all_finite(read_checkpoint(run_dir / "latest.ckpt")["model"])


# ---------------------------------------------------------------- on_nonfinite_loss="skip"
class _ParamsAfterEachStep(TrainerHooks):
    """The parameters after each global step, read when the next step's first batch starts (a
    dropped window has no on_after_optimizer_step to read them in)."""

    def __init__(self) -> None:
        self.params: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        flat = torch.cat([p.detach().reshape(-1) for p in trainer.unwrapped_model.parameters()])
        self.params[trainer.global_step] = flat.clone()


def test_skip_drops_a_window_with_nan_gradients_and_keeps_the_weights_finite(tmp_path):
    cfg = _config(tmp_path, on_nonfinite_loss="skip", log_loss_every_n_steps=5)
    model = torch.nn.Linear(3, 1)
    trainer = _trainer(cfg, _nan_gradient_at(7), model)
    seen = _ParamsAfterEachStep()
    trainer.add_hook(seen)
    result = trainer.fit([_loader()], max_steps=20, max_epochs=5)
    assert result.status.value == "completed" and result.global_step == 20
    assert result.metrics["train/skipped_nonfinite"] == 1.0
    assert torch.equal(seen.params[7], seen.params[6]), "the bad window must not update"
    assert not torch.equal(seen.params[8], seen.params[7])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert _all_finite(read_checkpoint(tmp_path / "run" / "latest.ckpt")["model"])


def test_skip_drops_the_whole_accumulation_window(tmp_path):
    def nan_on_one_micro_batch(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        loss = _mse(trainer, batch)
        if batch_idx == 5:  # the second micro-batch of step 3's window
            loss = loss * float("nan")
        return {"loss": loss}

    cfg = _config(
        tmp_path, on_nonfinite_loss="skip", performance={"gradient_accumulation_steps": 2}
    )
    trainer = _trainer(cfg, nan_on_one_micro_batch)
    seen = _ParamsAfterEachStep()
    trainer.add_hook(seen)
    trainer.fit([_loader()], max_steps=5)
    assert trainer.skipped_nonfinite == 1
    assert torch.equal(seen.params[3], seen.params[2])
    assert not torch.equal(seen.params[4], seen.params[3])


def test_with_gradient_clipping_the_clip_norm_is_the_gradient_check(tmp_path):
    cfg = _config(
        tmp_path,
        log_loss_every_n_steps=10,
        performance={"clip_grad_norm": 1.0},
        checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 3},
    )
    with pytest.raises(FloatingPointError, match=r"gradients not finite at global step 5\b"):
        _trainer(cfg, _nan_gradient_at(5)).fit([_loader()], max_steps=20, max_epochs=5)
    assert _saved_steps(tmp_path / "run") == [3]


class _StepHooks(TrainerHooks):
    """Which global steps the per-step hooks fired at, and the losses on_train_batch_end saw."""

    def __init__(self) -> None:
        self.batch_end_losses: list[float] = []
        self.before_step: list[int] = []
        self.after_step: list[int] = []

    def on_train_batch_end(self, trainer, batch, batch_idx, dataloader_idx, name, outputs):
        self.batch_end_losses.append(float(outputs["loss"].detach()))

    def on_before_optimizer_step(self, trainer, optimizer_idx):
        self.before_step.append(trainer.global_step + 1)

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self.after_step.append(trainer.global_step)


def _recording_losses(step, losses: dict[int, float]):
    """``step``, recording each finite loss by the global step it belongs to."""

    def recorded(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        outputs = step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
        losses[trainer.global_step + 1] = float(outputs["loss"].detach())
        return outputs

    return recorded


def _logged(run_dir: Path) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record for record in map(json.loads, lines)}


def test_skip_leaves_a_dropped_window_out_of_the_logged_loss_means(tmp_path):
    losses: dict[int, float] = {}
    cfg = _config(tmp_path, on_nonfinite_loss="skip", log_loss_every_n_steps=5)
    trainer = _trainer(cfg, _recording_losses(_nan_loss_at(3), losses))
    result = trainer.fit([_loader()], max_steps=10)
    logged = _logged(tmp_path / "run")
    # every batch has 4 samples: the sample-weighted mean is the plain mean of the kept losses
    expected = sum(losses[s] for s in (1, 2, 4, 5)) / 4
    assert logged[5]["train/loss"] == pytest.approx(expected, rel=1e-6)
    assert logged[5]["train/dl_dl0/loss"] == pytest.approx(expected, rel=1e-6)
    assert logged[5]["train/skipped_nonfinite"] == 1.0
    assert logged[10]["train/loss"] == pytest.approx(sum(losses[s] for s in range(6, 11)) / 5)
    assert result.metrics["train/skipped_nonfinite"] == 1.0


def test_skip_logs_no_loss_for_an_interval_whose_windows_were_all_dropped(tmp_path):
    cfg = _config(tmp_path, on_nonfinite_loss="skip", log_loss_every_n_steps=2)
    _trainer(cfg, _nan_loss_at(3, 4)).fit([_loader()], max_steps=6)
    logged = _logged(tmp_path / "run")
    assert "train/loss" not in logged[4] and logged[4]["train/skipped_nonfinite"] == 2.0
    assert all(math.isfinite(logged[s]["train/loss"]) for s in (2, 6))


def test_skip_steps_no_optimizer_hooks_for_a_dropped_window(tmp_path):
    cfg = _config(tmp_path, on_nonfinite_loss="skip")
    trainer = _trainer(cfg, _nan_loss_at(3))
    hooks = _StepHooks()
    trainer.add_hook(hooks)
    trainer.fit([_loader()], max_steps=5)
    assert hooks.after_step == [1, 2, 4, 5], "the optimizer did not step at step 3"
    # before the check: the dropped window's gradients are final, then found not finite
    assert hooks.before_step == [1, 2, 3, 4, 5]
    # every micro-batch that ran ends with its outputs, the dropped one's non-finite loss too
    assert len(hooks.batch_end_losses) == 5 and math.isnan(hooks.batch_end_losses[2])


def test_skip_keeps_the_step_number_and_the_step_schedulers_lag_by_the_dropped_windows(tmp_path):
    # docs/troubleshooting.md: the global step counts the schedule's windows, dropped ones too;
    # a step scheduler steps only with its optimizer
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda count: 1.0)
    trainer = GenericTrainer(
        _config(tmp_path, on_nonfinite_loss="skip"), model, [optimizer], [scheduler]
    )
    trainer.set_training_step(_nan_loss_at(3, 4))
    result = trainer.fit([_loader()], max_steps=6)
    assert result.global_step == 6 and trainer.skipped_nonfinite == 2
    assert scheduler.last_epoch == 4


def test_a_dropped_windows_samples_still_count_for_throughput():
    # docs/troubleshooting.md: train/samples_per_sec counts the samples the loop processed
    metrics = TrainMetrics(["a"])
    metrics.add_outputs(0, {"loss": 1.0}, 1.0, 4)
    mark = metrics.mark()
    metrics.add_outputs(0, {"loss": float("nan")}, float("nan"), 4)
    metrics.drop_since(mark)
    assert metrics.pop_samples() == 8
    assert metrics.pop_means() == {"train/dl_a/loss": 1.0, "train/loss": 1.0}


def test_skip_drops_what_a_dropped_window_did_to_the_buffers_too(tmp_path):
    # a NaN input sample: BatchNorm's running statistics took it in during the forward pass,
    # before the window was found not finite; the run must not die on its next save
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    x[9] = float("nan")  # in the third batch: step 3
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    )
    cfg = _config(tmp_path, on_nonfinite_loss="skip")
    trainer = _trainer(cfg, _nan_loss_at(), model)  # no NaN of its own
    seen = _BuffersAfterEachStep()
    trainer.add_hook(seen)
    result = trainer.fit([DataLoader(TensorDataset(x, y), batch_size=4)], max_steps=8)
    assert result.status.value == "completed" and trainer.skipped_nonfinite == 1
    assert _all_finite(model.state_dict())
    # the dropped step left the buffers as the step before it had: statistics and batch count
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(seen.buffers[3][key], seen.buffers[2][key]), key
    assert int(model[1].num_batches_tracked) == 7
    assert _saved_steps(tmp_path / "run") == [8]


class _RebindingRunningMean(torch.nn.Module):
    """Replaces its buffer in forward (``self.running = ...``) instead of updating it in place,
    and keeps an in-place counter beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)
        self.register_buffer("running", torch.zeros(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.training:
            self.running = self.running * 0.9 + x.detach().mean(0)
            self.count += 1
        return self.linear(x)


def test_skip_restores_a_buffer_that_forward_replaced(tmp_path):
    # the old restore copied the saved values into the tensor the window had started with,
    # which the module no longer held: its new NaN buffer stayed and the next save refused it
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    x[9] = float("nan")  # in the third batch: step 3
    model = _RebindingRunningMean()
    cfg = _config(tmp_path, on_nonfinite_loss="skip")
    trainer = _trainer(cfg, _nan_loss_at(), model)
    seen = _BuffersAfterEachStep()
    trainer.add_hook(seen)
    result = trainer.fit([DataLoader(TensorDataset(x, y), batch_size=4)], max_steps=8)
    assert result.status.value == "completed" and trainer.skipped_nonfinite == 1
    assert _all_finite(model.state_dict())
    for key in ("running", "count"):
        assert torch.equal(seen.buffers[3][key], seen.buffers[2][key]), key
    assert int(model.count) == 7
    assert _saved_steps(tmp_path / "run") == [8]


class _BuffersAfterEachStep(TrainerHooks):
    """The model's buffers as each batch starts, by the global step reached then."""

    def __init__(self) -> None:
        self.buffers: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        module = trainer.unwrapped_model
        self.buffers[trainer.global_step] = {name: b.clone() for name, b in module.named_buffers()}


@pytest.fixture
def cpu_grad_scalers(monkeypatch) -> list:
    """float16 autocast with a GradScaler on the CPU: the trainer makes one only on CUDA, and
    torch's CPU GradScaler keeps the same books, so its path runs here. Returns the Autocast
    objects made."""
    made = []
    real_init = precision.Autocast.__init__

    def init(self, dtype_name, device, **kwargs):
        real_init(self, dtype_name, device, **kwargs)
        if self.dtype is torch.float16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler("cpu")
        made.append(self)

    monkeypatch.setattr(precision.Autocast, "__init__", init)
    return made


def test_skip_under_a_grad_scaler_lets_it_back_off_and_trains_on(tmp_path, cpu_grad_scalers):
    # the dropped window's unscale_ had found inf/NaN gradients; without the scaler's update
    # the next step's unscale_ raised "unscale_() has already been called on this optimizer"
    cfg = _config(
        tmp_path,
        on_nonfinite_loss="skip",
        performance={"use_amp": True, "amp_dtype": "float16"},
    )
    trainer = _trainer(cfg, _nan_loss_at(3))
    (autocast,) = cpu_grad_scalers
    scales = _ScaleAfterEachStep(autocast.scaler)
    trainer.add_hook(scales)
    result = trainer.fit([_loader()], max_steps=8)
    assert result.status.value == "completed" and trainer.skipped_nonfinite == 1
    # the dropped step backed the scale off, as a step the scaler skips itself
    assert scales.after[3] == scales.after[2] * autocast.scaler.get_backoff_factor()
    assert _all_finite(trainer.unwrapped_model.state_dict())


class _ScaleAfterEachStep(TrainerHooks):
    """The GradScaler's scale after each global step, read as the next batch starts."""

    def __init__(self, scaler) -> None:
        self.scaler, self.after = scaler, {}

    def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        self.after[trainer.global_step] = self.scaler.get_scale()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_skip_under_the_cuda_grad_scaler_trains_on(tmp_path):
    cfg = _config(
        tmp_path,
        device="cuda",
        on_nonfinite_loss="skip",
        performance={"use_amp": True, "amp_dtype": "float16"},
    )
    trainer = _trainer(cfg, _nan_loss_at(3))
    result = trainer.fit([_loader()], max_steps=8)
    assert result.status.value == "completed" and trainer.skipped_nonfinite == 1
    assert _all_finite(trainer.unwrapped_model.state_dict())
