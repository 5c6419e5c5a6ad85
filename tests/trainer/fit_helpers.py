"""Small data, config and trainer builders shared by the GenericTrainer behaviour tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)


def make_data(n, seed, dim=3):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, dim, generator=g), torch.randn(n, 1, generator=g))


def make_loader(n=8, seed=0, batch_size=4, **kwargs):
    return DataLoader(make_data(n, seed), batch_size=batch_size, **kwargs)


def make_config(tmp_path: Path, **changes) -> GenericTrainerConfig:
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


def make_trainer(cfg, model=None, optimizers=None, step=mse_step, **kwargs):
    model = model or torch.nn.Linear(3, 1)
    optimizers = optimizers or [torch.optim.SGD(model.parameters(), lr=0.1)]
    trainer = GenericTrainer(cfg, model, optimizers, **kwargs)
    trainer.set_training_step(step)
    trainer.set_validation_step(mse_step)
    return trainer


def read_jsonl(tmp_path, name="t"):
    return [
        json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    ]
