"""Checkpoint saves never persist non-finite state, fail with a CheckpointError that names the
cause (disk full, ...), stop at once on Ctrl-C, keep one file per step, and resume from the
newest complete file."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import is_temp_file
from model_training_framework.trainer.config import CheckpointConfig
from model_training_framework.trainer.state import file_format as checkpoint_io
from model_training_framework.trainer.state.manager import CheckpointManager

CODE_VERSION = {"commit": "abc123", "dirty": False, "source": "git"}


def make_manager(run_dir: Path, **config) -> CheckpointManager:
    return CheckpointManager(CheckpointConfig(**config), run_dir, code_version=CODE_VERSION)


def payload(value: float, size: int = 4) -> dict:
    weight = torch.full((size,), 1.0)
    weight[-1] = value
    return {
        "model": {"weight": weight, "steps": torch.tensor([3])},
        "optimizers": [{"state": {0: {"exp_avg": torch.zeros(size)}}}],
    }


def files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".ckpt"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "exp"


# ---------------------------------------------------------------- nothing non-finite persisted
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_never_written(run_dir, bad):
    manager = make_manager(run_dir)
    manager.save(payload(1.0), epoch=0, step=1)

    with pytest.raises(CheckpointError, match=r"refusing to write .*step_2.*model\['weight'\]"):
        manager.save(payload(bad), epoch=0, step=2)

    assert files(run_dir) == ["epoch_0_step_1.ckpt", "latest.ckpt"]
    assert manager.latest_path().name == "epoch_0_step_1.ckpt"
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]


def test_non_finite_optimizer_state_is_named(run_dir):
    state = payload(1.0)
    state["optimizers"][0]["state"][0]["exp_avg"][0] = float("nan")
    with pytest.raises(CheckpointError, match=r"optimizers\[0\]\['state'\]\[0\]\['exp_avg'\]"):
        make_manager(run_dir).save(state, epoch=0, step=1)
    assert not run_dir.exists() or files(run_dir) == []


def test_non_finite_half_precision_weights_are_caught_and_large_finite_ones_pass(run_dir):
    manager = make_manager(run_dir)
    manager.save({"model": {"w": torch.full((8,), 60000.0, dtype=torch.float16)}}, epoch=0, step=1)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        bad = torch.tensor([1.0, float("nan")], dtype=torch.bfloat16)
        manager.save({"model": {"w": bad}}, epoch=0, step=2)


def test_an_async_save_of_non_finite_weights_fails_and_writes_nothing(run_dir):
    manager = make_manager(run_dir, async_save=True)
    manager.save(payload(1.0), epoch=0, step=1)
    manager.save(payload(float("nan")), epoch=0, step=2)
    with pytest.raises(CheckpointError, match="refusing to write"):
        manager.wait()
    assert files(run_dir) == ["epoch_0_step_1.ckpt", "latest.ckpt"]


def test_rotation_never_deletes_the_newest_finite_checkpoints(run_dir):
    manager = make_manager(run_dir, max_checkpoints=2)
    for step in (1, 2):
        manager.save(payload(float(step)), epoch=0, step=step)
    for step in (3, 4):  # the weights went NaN: every later save is refused
        with pytest.raises(CheckpointError):
            manager.save(payload(float("nan")), epoch=0, step=step)
    assert files(run_dir) == ["epoch_0_step_1.ckpt", "epoch_0_step_2.ckpt", "latest.ckpt"]
    path, content = make_manager(run_dir).load_latest_valid()
    assert path.name == "epoch_0_step_2.ckpt" and content["global_step"] == 2


# ---------------------------------------------------------------- one file per step
def test_an_epoch_end_save_at_an_already_saved_step_replaces_that_file(run_dir):
    manager = make_manager(run_dir, max_checkpoints=2)
    manager.save(payload(1.0), epoch=0, step=25)
    manager.save(payload(2.0), epoch=0, step=50)  # the step trigger
    manager.save(payload(3.0), epoch=1, step=50)  # the epoch-end save of the same step
    assert files(run_dir) == ["epoch_0_step_25.ckpt", "epoch_1_step_50.ckpt", "latest.ckpt"]
    assert manager.latest_path().name == "epoch_1_step_50.ckpt"


# ---------------------------------------------------------------- failed saves
class _FailingWrites:
    """Makes the checkpoint file's ``write`` raise ``error`` once ``after`` bytes were written,
    as a full disk or a Ctrl-C does (torch.save itself runs unchanged)."""

    def __init__(self, monkeypatch, error: BaseException, after: int = 100) -> None:
        class Handle:
            def __init__(self, handle) -> None:
                self.handle, self.num_bytes = handle, 0

            def write(self, data):
                self.num_bytes += len(data)
                if self.num_bytes > after:
                    raise error
                return self.handle.write(data)

            def flush(self):
                self.handle.flush()

        real_atomic_write = checkpoint_io.atomic_write
        monkeypatch.setattr(
            checkpoint_io,
            "atomic_write",
            lambda path, write: real_atomic_write(path, lambda handle: write(Handle(handle))),
        )


def test_a_full_disk_is_a_checkpoint_error_saying_so(run_dir, monkeypatch):
    manager = make_manager(run_dir)
    manager.save(payload(1.0), epoch=0, step=1)
    _FailingWrites(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    with pytest.raises(CheckpointError) as caught:
        manager.save(payload(2.0, size=10_000), epoch=0, step=2)

    message = str(caught.value)
    assert "no space left on device at" in message and "epoch_0_step_2.ckpt" in message
    assert "inline_container" not in message and "unexpected pos" not in message
    assert files(run_dir) == ["epoch_0_step_1.ckpt", "latest.ckpt"]
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]


def test_ctrl_c_during_a_synchronous_save_stops_with_keyboard_interrupt(run_dir, monkeypatch):
    manager = make_manager(run_dir)
    manager.save(payload(1.0), epoch=0, step=1)
    _FailingWrites(monkeypatch, KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        manager.save(payload(2.0, size=10_000), epoch=0, step=2)

    assert files(run_dir) == ["epoch_0_step_1.ckpt", "latest.ckpt"]
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB filesystem (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "tiny_fs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_real_full_disk_is_a_checkpoint_error_and_earlier_files_survive(small_tmpfs):
    run_dir = small_tmpfs / "exp"
    manager = make_manager(run_dir)
    manager.save(payload(1.0, size=1000), epoch=0, step=1)

    with pytest.raises(CheckpointError, match=f"no space left on device at {run_dir}"):
        manager.save(payload(2.0, size=400_000), epoch=0, step=2)  # 1.6 MB

    assert files(run_dir) == ["epoch_0_step_1.ckpt", "latest.ckpt"]
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]
    assert make_manager(run_dir).load_latest_valid()[1]["global_step"] == 1


# ---------------------------------------------------------------- through the trainer
def _trainer(tmp_path, step_fn, *, schedulers=None, model=None, **config):
    from torch.utils.data import DataLoader, TensorDataset

    from model_training_framework.trainer import (
        GenericTrainer,
        GenericTrainerConfig,
        MultiDataLoaderConfig,
    )

    model = model or torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = GenericTrainer(
        GenericTrainerConfig(
            experiment_name="run",
            seed=0,
            train_loader_config=MultiDataLoaderConfig(),
            checkpoint={"root_dir": str(tmp_path), **config.pop("checkpoint", {})},
            **config,
        ),
        model,
        [optimizer],
        None if schedulers is None else [schedulers(optimizer)],
    )
    trainer.set_training_step(step_fn)
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(32, 3, generator=g)), batch_size=4)
    return trainer, loader


def _mse(trainer, batch):
    return trainer.model(batch[0]).pow(2).mean()


def nan_gradient_from_step_3(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    """A finite loss whose gradient is NaN (d/dx sqrt(|x|) at 0) from global step 3 on."""
    loss = _mse(trainer, batch)
    if trainer.global_step >= 3:
        weight = trainer.model.weight
        loss = loss + torch.sqrt(torch.abs(weight - weight.detach())).sum()
    return {"loss": loss}


def plain_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    return {"loss": _mse(trainer, batch)}


def _assert_every_checkpoint_is_finite(run_dir: Path) -> list[int]:
    steps = []
    for path in sorted(run_dir.glob("epoch_*_step_*.ckpt")):
        content = checkpoint_io.read_checkpoint(path)
        for key, tensor in content["model"].items():
            assert bool(tensor.isfinite().all()), f"{path.name} holds non-finite {key}"
        steps.append(content["global_step"])
    return steps


def test_a_nan_gradient_with_a_finite_loss_never_reaches_a_checkpoint(tmp_path):
    trainer, loader = _trainer(
        tmp_path,
        nan_gradient_from_step_3,
        checkpoint={"save_every_n_steps": 1, "max_checkpoints": 3},
    )
    with pytest.raises((FloatingPointError, CheckpointError)):
        trainer.fit([loader], max_epochs=2)
    assert _assert_every_checkpoint_is_finite(tmp_path / "run") == [1, 2, 3]


def test_skipped_nan_gradients_leave_every_kept_checkpoint_finite(tmp_path):
    trainer, loader = _trainer(
        tmp_path,
        nan_gradient_from_step_3,
        on_nonfinite_loss="skip",
        checkpoint={"save_every_n_steps": 1, "max_checkpoints": 3},
    )
    result = trainer.fit([loader], max_epochs=2)
    assert result.status.value == "completed"
    assert _assert_every_checkpoint_is_finite(tmp_path / "run") == [14, 15, 16]


def test_weights_an_optimizer_step_made_nan_are_refused_at_the_next_save(tmp_path):
    """Loss and gradients stay finite; a NaN learning rate (a broken schedule) poisons the
    weights at step 3: the save of step 3 fails and the finite checkpoints stay."""
    trainer, loader = _trainer(
        tmp_path,
        plain_step,
        schedulers=lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, lambda n: float("nan") if n >= 2 else 1.0
        ),
        checkpoint={"save_every_n_steps": 1, "max_checkpoints": 2},
    )
    with pytest.raises(
        CheckpointError, match=r"step_3\.ckpt: model\['weight'\], model\['bias'\] hold NaN"
    ):
        trainer.fit([loader], max_epochs=1)
    assert _assert_every_checkpoint_is_finite(tmp_path / "run") == [1, 2]
    assert (tmp_path / "run" / "latest.ckpt").resolve().name == "epoch_0_step_2.ckpt"


def test_a_step_saved_by_the_step_trigger_and_at_epoch_end_has_one_file(tmp_path):
    trainer, loader = _trainer(  # 8 batches per epoch: steps 8 and 16 end epochs
        tmp_path, plain_step, checkpoint={"save_every_n_steps": 4, "max_checkpoints": 3}
    )
    trainer.fit([loader], max_epochs=2)
    # steps 4, 8, 12, 16; the epoch-end saves of steps 8 and 16 replaced their step saves
    assert files(tmp_path / "run") == [
        "epoch_1_step_12.ckpt",
        "epoch_1_step_8.ckpt",
        "epoch_2_step_16.ckpt",
        "latest.ckpt",
    ]
