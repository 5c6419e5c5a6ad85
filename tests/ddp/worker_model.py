"""The DDP worker's model, and its states as full tensors (gathered from every rank under
FSDP) for ``final_rank<r>.pt`` and ``start_rank<r>.pt``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule

from model_training_framework.trainer import GenericTrainer, TrainerHooks


class Net(torch.nn.Module):
    """A shared trunk and one head per loader (no dropout: the runs are comparable)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(16, 1), torch.nn.Linear(16, 1)])

    def forward(self, x: torch.Tensor, head: int) -> torch.Tensor:
        return self.heads[head](self.trunk(x))


def full_states(trainer: GenericTrainer) -> dict:
    """Model and optimizer states with full tensors (gathered from every rank under FSDP)."""
    model, optimizers = trainer.unwrapped_model, trainer.optimizers
    if not isinstance(model, FSDPModule):
        return {
            "model": model.state_dict(),
            "optimizers": [opt.state_dict() for opt in optimizers],
        }
    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    return {
        "model": get_model_state_dict(model, options=options),
        "optimizers": [get_optimizer_state_dict(model, opt, options=options) for opt in optimizers],
    }


class DumpAtStart(TrainerHooks):
    """Writes the (gathered) states as training starts: what a resume loaded."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_start(self, trainer) -> None:
        states = {"global_step": trainer.global_step, **full_states(trainer)}
        torch.save(states, self.run_dir / f"start_rank{int(os.environ.get('RANK', '0'))}.pt")
