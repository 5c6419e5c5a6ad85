"""A hook added while ``fit`` runs (from another hook) gets every call from then on, the
per-batch ones included, like a hook added before ``fit``."""

from __future__ import annotations

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

PER_BATCH = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
)


class Counter(TrainerHooks):
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        self._count("on_train_batch_start")

    def on_train_batch_end(
        self, trainer, batch, batch_idx, dataloader_idx, dataloader_name, outputs
    ):
        self._count("on_train_batch_end")

    def on_before_backward(self, trainer, loss):
        self._count("on_before_backward")

    def on_after_backward(self, trainer):
        self._count("on_after_backward")

    def on_before_optimizer_step(self, trainer, optimizer_idx):
        self._count("on_before_optimizer_step")

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self._count("on_after_optimizer_step")

    def on_epoch_end(self, trainer, epoch, metrics):
        self._count("on_epoch_end")


class AddsAtTrainStart(TrainerHooks):
    def __init__(self, hook: TrainerHooks) -> None:
        self.hook = hook

    def on_train_start(self, trainer):
        trainer.add_hook(self.hook)


def _step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


def _fit(tmp_path, hook_before_fit: TrainerHooks) -> None:
    config = GenericTrainerConfig(
        experiment_name="hooks",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path)},
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(_step)
    trainer.add_hook(hook_before_fit)
    data = TensorDataset(torch.randn(12, 3), torch.randn(12, 1))
    trainer.fit([DataLoader(data, batch_size=4)], max_epochs=2)


def test_a_hook_added_at_train_start_gets_the_calls_a_hook_added_before_fit_gets(tmp_path):
    before, during = Counter(), Counter()
    _fit(tmp_path / "before", before)
    _fit(tmp_path / "during", AddsAtTrainStart(during))
    assert before.calls["on_train_batch_end"] == 6
    assert set(before.calls) == {*PER_BATCH, "on_epoch_end"}
    assert during.calls == before.calls


class Tally(TrainerHooks):
    """Counts optimizer steps across resumes (its state is the count)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self.steps += 1

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def _resumable_fit(tmp_path, hook: TrainerHooks, max_epochs: int):
    config = GenericTrainerConfig(
        experiment_name="resumed",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path), "save_every_n_epochs": 1},
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(_step)
    trainer.add_hook(hook)
    data = TensorDataset(torch.randn(12, 3), torch.randn(12, 1))
    return trainer.fit([DataLoader(data, batch_size=4)], max_epochs=max_epochs)


def test_the_state_of_a_hook_added_at_train_start_is_restored_on_resume(tmp_path):
    first = Tally()
    _resumable_fit(tmp_path, AddsAtTrainStart(first), max_epochs=1)
    resumed = Tally()
    _resumable_fit(tmp_path, AddsAtTrainStart(resumed), max_epochs=2)
    assert first.steps == 3
    assert resumed.steps == 6


def test_saved_hook_state_that_no_hook_claims_by_train_start_is_a_checkpoint_error(tmp_path):
    _resumable_fit(tmp_path, AddsAtTrainStart(Tally()), max_epochs=1)
    with pytest.raises(CheckpointError, match=r"\['Tally#0'\]"):
        _resumable_fit(tmp_path, TrainerHooks(), max_epochs=2)
