"""Shared helpers for exact-resume tests: build a small run, stop it, resume it, compare.

``assert_resumes_exactly(make_run, stop_after=k)`` runs ``make_run`` uninterrupted, then again
stopped after k optimizer steps and resumed in a fresh trainer (fresh model and optimizer, as
after a process restart), and compares parameters, optimizer state and the sequence of
(loader, sample indices) with ``torch.equal``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)


def indexed_dataset(n: int, dim: int = 4, seed: int = 0) -> TensorDataset:
    """Features, targets and the sample index (so a step can report which samples it saw)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y, torch.arange(n))


def small_model(dim: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(dim, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
    )


@dataclass
class Recorder:
    """Collects the (loader, sample indices) sequence seen by the training step."""

    seen: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)

    def training_step(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y, idx = batch
        self.seen.append((dataloader_idx, tuple(idx.tolist())))
        pred = trainer.model(x)
        loss = torch.nn.functional.mse_loss(pred, y)
        return {"loss": loss, "mae": (pred - y).abs().mean()}


def validation_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y, _ = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


@dataclass
class RunSpec:
    """What one run needs; ``make_run(root)`` builds a fresh one (as a new process would)."""

    config: GenericTrainerConfig
    model: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    train_loaders: list[DataLoader]
    val_loaders: list[DataLoader] | None = None
    schedulers: list[Any] | None = None
    max_epochs: int = 2


def make_trainer(spec: RunSpec) -> tuple[GenericTrainer, Recorder]:
    trainer = GenericTrainer(spec.config, spec.model, spec.optimizers, spec.schedulers)
    recorder = Recorder()
    trainer.set_training_step(recorder.training_step)
    trainer.set_validation_step(validation_step)
    return trainer, recorder


def basic_config(root: Path, name: str = "run", **loader_kwargs: Any) -> GenericTrainerConfig:
    return GenericTrainerConfig(
        experiment_name=name,
        seed=123,
        train_loader_config=MultiDataLoaderConfig(**loader_kwargs),
        checkpoint={"root_dir": str(root), "save_every_n_epochs": None},
        log_loss_every_n_steps=1,
    )


class _StopAt(TrainerHooks):
    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _final_state(trainer: GenericTrainer) -> tuple[dict, list]:
    model = {k: v.clone() for k, v in trainer.unwrapped_model.state_dict().items()}
    opts = [opt.state_dict() for opt in trainer.optimizers]
    return model, opts


def assert_states_equal(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"tensor differs at {path}"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"keys differ at {path}: {set(a) ^ set(b)}"
        for key in a:
            assert_states_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"length differs at {path}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_states_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"value differs at {path}: {a!r} != {b!r}"


def assert_resumes_exactly(
    make_run: Callable[[Path, str], RunSpec],
    stop_after: int,
    tmp_path: Path,
    *,
    stop_signal: int | None = None,
) -> None:
    """Stop after ``stop_after`` optimizer steps, resume, and compare with an uninterrupted run.

    ``stop_signal`` None stops through ``max_steps``; a signal number (SIGUSR1, SIGINT) sends it
    to this process from a hook, exercising the preemption path.
    """
    full_spec = make_run(tmp_path / "full", "run")
    full, full_rec = make_trainer(full_spec)
    full_result = full.fit(
        full_spec.train_loaders, full_spec.val_loaders, max_epochs=full_spec.max_epochs
    )
    assert full_result.global_step > stop_after, "stop_after must fall inside the run"

    first_spec = make_run(tmp_path / "split", "run")
    first, first_rec = make_trainer(first_spec)
    if stop_signal is None:
        first_result = first.fit(
            first_spec.train_loaders,
            first_spec.val_loaders,
            max_epochs=first_spec.max_epochs,
            max_steps=stop_after,
        )
    else:
        first.add_hook(_StopAt(stop_after, stop_signal))
        first_result = first.fit(
            first_spec.train_loaders, first_spec.val_loaders, max_epochs=first_spec.max_epochs
        )
        expected = "interrupted" if stop_signal == signal.SIGINT else "preempted"
        assert first_result.status.value == expected
    assert first_result.global_step == stop_after

    second_spec = make_run(tmp_path / "split", "run")
    second, second_rec = make_trainer(second_spec)
    second_result = second.fit(
        second_spec.train_loaders, second_spec.val_loaders, max_epochs=second_spec.max_epochs
    )

    assert second_result.global_step == full_result.global_step
    assert first_rec.seen + second_rec.seen == full_rec.seen, "data order differs after resume"
    assert second_result.data_fingerprint == full_result.data_fingerprint
    full_model, full_opts = _final_state(full)
    resumed_model, resumed_opts = _final_state(second)
    assert_states_equal(full_model, resumed_model, "model")
    assert_states_equal(full_opts, resumed_opts, "optimizers")
