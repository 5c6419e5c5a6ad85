"""The hot path on a device: batches copied on a side stream, no host sync per step.

The CUDA tests are skipped on machines without a GPU; run them where one is available.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.data.devices import build_batch_mover

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _batch():
    return {"x": torch.randn(4, 3), "pair": (torch.arange(4), "label")}


def test_on_cpu_the_batch_is_used_as_it_is():
    batch = _batch()
    assert build_batch_mover(torch.device("cpu"))(batch) is batch


@needs_cuda
def test_cuda_batches_are_copied_on_a_side_stream_and_are_ready_when_used():
    batch = _batch()
    device = torch.device("cuda", torch.cuda.current_device())
    moved = build_batch_mover(device)(batch)
    assert moved["x"].device == device and moved["pair"][0].device == device
    assert moved["pair"][1] == "label"
    # used on the compute stream right away: the wait on the copy stream orders it
    assert torch.equal((moved["x"] * 2).cpu(), batch["x"] * 2)
    assert torch.equal(moved["pair"][0].cpu(), batch["pair"][0])


class _SyncDebugWindow(TrainerHooks):
    """Turns CUDA's sync debug mode to "error" between two optimizer steps."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.steps_checked = 0

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        step = trainer.global_step
        if step == self.first:
            torch.cuda.set_sync_debug_mode("error")
        elif step == self.last:
            torch.cuda.set_sync_debug_mode("default")
            self.steps_checked = self.last - self.first


@needs_cuda
def test_steady_state_steps_with_defaults_never_synchronise_the_gpu(tmp_path: Path):
    """Defaults (profiling on, logging every 50 steps, Adam, no pin_memory on the loader):
    the steps between two logging steps may not read anything back from the GPU."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(200 * 8, 16, generator=g), torch.randn(200 * 8, 1, generator=g)
    )
    loader = DataLoader(data, batch_size=8, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    cfg = GenericTrainerConfig(
        experiment_name="sync",
        seed=0,
        device="cuda",
        checkpoint={"root_dir": str(tmp_path)},
        train_loader_config=MultiDataLoaderConfig(),
    )
    trainer = GenericTrainer(cfg, model, [torch.optim.Adam(model.parameters(), lr=1e-3)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    window = _SyncDebugWindow(first=51, last=99)  # logging happens at step 50 and 100
    trainer.add_hook(window)
    try:
        result = trainer.fit([loader], max_steps=120)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.global_step == 120 and window.steps_checked == 48
