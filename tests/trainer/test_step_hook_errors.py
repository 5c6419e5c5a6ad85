"""The training step calls ``on_after_optimizer_step`` itself (NOTE [lean step]): a hook that
raises there is reported as the dispatcher reports it, and ``continue_on_hook_error`` logs it
and keeps calling the hooks after it."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import HookError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)


class FailsAtStepTwo(TrainerHooks):
    def on_after_optimizer_step(self, trainer, optimizer_idx):
        if trainer.global_step == 2:
            raise ValueError("bad step 2")


class CountsSteps(TrainerHooks):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_after_optimizer_step(self, trainer, optimizer_idx):
        self.steps.append(trainer.global_step)


def _step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    x, y = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}


def _fit(tmp_path, hooks, *, continue_on_error: bool) -> None:
    config = GenericTrainerConfig(
        experiment_name="step_hooks",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path)},
        hooks={"continue_on_hook_error": continue_on_error},
    )
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(_step)
    for hook in hooks:
        trainer.add_hook(hook)
    data = TensorDataset(torch.randn(12, 3), torch.randn(12, 1))
    trainer.fit([DataLoader(data, batch_size=4)], max_epochs=1)


def test_a_raising_after_step_hook_stops_training_with_a_hook_error(tmp_path):
    counter = CountsSteps()
    with pytest.raises(HookError, match=r"hook FailsAtStepTwo\.on_after_optimizer_step raised"):
        _fit(tmp_path, [FailsAtStepTwo(), counter], continue_on_error=False)
    assert counter.steps == [1], "the hooks after the failing one are not called at that step"


def test_continue_on_hook_error_logs_and_calls_the_hooks_after_it(tmp_path, caplog):
    counter = CountsSteps()
    _fit(tmp_path, [FailsAtStepTwo(), counter], continue_on_error=True)
    assert counter.steps == [1, 2, 3]
    assert "FailsAtStepTwo.on_after_optimizer_step raised ValueError: bad step 2" in caplog.text
