"""A save that runs out of disk space stops the run with a CheckpointError naming the cause and
keeps every earlier checkpoint intact (and ``latest.ckpt`` pointing at a complete one).

Two ways to fill the disk: a real 1 MiB tmpfs (needs root to mount; skipped elsewhere), and a
write that fails with ENOSPC once the third checkpoint is being written (runs everywhere).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework import io_utils
from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)
from model_training_framework.trainer.state.file_format import read_checkpoint

BALLAST_FLOATS = 40_000  # ~160 kB per checkpoint: a 1 MiB disk fills after a few saves
NUM_SAVES_THAT_FIT = 2  # the injected variant


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.register_buffer("ballast", torch.zeros(BALLAST_FLOATS))

    def forward(self, x):
        return self.linear(x)


def _fit(root: Path) -> None:
    torch.manual_seed(0)
    model = _Net()
    config = GenericTrainerConfig(
        experiment_name="full",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={
            "root_dir": str(root),
            "save_every_n_steps": 1,
            "save_every_n_epochs": None,
            "max_checkpoints": 20,
        },
        logging={"progress_bar": False},
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(
        lambda t, batch, *rest: {"loss": torch.nn.functional.mse_loss(t.model(batch[0]), batch[1])}
    )
    data = TensorDataset(torch.randn(80, 4), torch.randn(80, 1))
    trainer.fit([DataLoader(data, batch_size=4)])


@pytest.fixture
def small_tmpfs(tmp_path):
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def injected_full_disk(tmp_path, monkeypatch):
    """Checkpoint writes fail with ENOSPC from the third checkpoint on."""
    opened = []
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self._handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._handle.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        if ".ckpt." in os.readlink(f"/proc/self/fd/{fd}"):  # a checkpoint's temporary file
            opened.append(fd)
            if len(opened) > NUM_SAVES_THAT_FIT:
                return FullDisk(handle)
        return handle

    monkeypatch.setattr(io_utils.os, "fdopen", fdopen)
    return tmp_path


@pytest.fixture(params=["tmpfs", "injected"])
def full_disk(request):
    return request.getfixturevalue(
        "small_tmpfs" if request.param == "tmpfs" else "injected_full_disk"
    )


def test_a_save_on_a_full_disk_is_a_clear_error_that_keeps_the_earlier_checkpoints(full_disk):
    with pytest.raises(CheckpointError) as caught:
        _fit(full_disk)

    message = str(caught.value)
    assert "no space left on device" in message.lower(), message
    assert "earlier checkpoints" in message and "intact" in message, message
    run_dir = full_disk / "full"
    kept = sorted(run_dir.glob("epoch_*_step_*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    assert len(kept) >= 2, kept
    steps = [read_checkpoint(path)["global_step"] for path in kept]  # each one complete
    assert steps == list(range(1, len(kept) + 1))
    assert (run_dir / "latest.ckpt").resolve() == kept[-1].resolve()
    assert not [p.name for p in run_dir.iterdir() if io_utils.is_temp_file(p)]
