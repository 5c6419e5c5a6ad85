"""A throwaway user project: a components module and an experiment YAML in ``tmp_path``."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import yaml

COMPONENTS = """
import os
import signal

import torch
from torch.utils.data import DataLoader, TensorDataset


def build_model(hidden=8):
    return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


def data(num_samples=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, 4, generator=generator)
    return TensorDataset(inputs, inputs.sum(dim=1, keepdim=True))


def ready_loader(num_samples=64):
    return DataLoader(data(num_samples), batch_size=16)


def not_a_dataset():
    return [1, 2, 3]


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    inputs, targets = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(inputs), targets)}


def preempting_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    if trainer.global_step == int(os.environ["PREEMPT_AT_STEP"]) and not os.environ.get("PREEMPTED"):
        os.environ["PREEMPTED"] = "1"
        os.kill(os.getpid(), getattr(signal, os.environ.get("PREEMPT_SIGNAL", "SIGUSR1")))
    return training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)


validation_step = training_step
"""


def experiment_dict(module: str, **overrides: object) -> dict:
    """A tiny experiment: 2 train loaders of 4 batches, 1 val loader, 2 epochs."""
    config = {
        "experiment_name": "tiny",
        "seed": 0,
        "device": "cpu",
        "model": {
            "factory": f"{module}.build_model",
            "training_step": f"{module}.training_step",
            "validation_step": f"{module}.validation_step",
            "hidden": 8,
        },
        "data": {
            "train": [
                {"name": "a", "factory": f"{module}.data", "batch_size": 16, "seed": 1},
                {"name": "b", "factory": f"{module}.data", "batch_size": 16, "seed": 2},
            ],
            "val": [{"name": "v", "factory": f"{module}.data", "batch_size": 32, "seed": 3}],
        },
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"max_epochs": 2},
        "checkpoint": {"root_dir": "runs"},
        "logging": {"progress_bar": False},
    }
    config.update(overrides)
    return config


class Project:
    """``root`` (the working directory), the components ``module`` name and a config writer."""

    def __init__(self, root: Path, module: str) -> None:
        self.root = root
        self.module = module

    def write_config(self, name: str = "experiment.yaml", **overrides: object) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(experiment_dict(self.module, **overrides)), encoding="utf-8")
        return path

    def run_dir(self, name: str = "tiny") -> Path:
        return self.root / "runs" / name


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project folder as cwd, with a uniquely named components module (no import clashes)."""
    module = f"components_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(COMPONENTS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # mtf train prepends the cwd
    yield Project(tmp_path, module)
    sys.modules.pop(module, None)
