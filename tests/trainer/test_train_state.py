"""TrainState: the loop counters in one place, saved as the checkpoint's "train_state" entry."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)
from model_training_framework.trainer.state.file_format import read_checkpoint, write_checkpoint
from model_training_framework.trainer.train_state import TrainState


def _fit(root, **kwargs):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    config = GenericTrainerConfig(
        experiment_name="t",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(root)},
        log_loss_every_n_steps=1,
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(
        lambda t, batch, *_: {"loss": torch.nn.functional.mse_loss(t.model(batch[0]), batch[1])}
    )
    data = TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    return trainer, trainer.fit([DataLoader(data, batch_size=4)], **kwargs)


def test_state_dict_is_the_fields_and_loads_back():
    state = TrainState(epoch=2, global_step=7, epoch_fresh=False, skipped_nonfinite=1)
    state.last_metrics["train/loss"] = 0.5
    saved = state.state_dict()

    assert set(saved) == {item.name for item in fields(TrainState)}
    restored = TrainState()
    restored.load_state_dict({**saved, "base_seed": 3})  # other "trainer" keys are not its own
    assert restored == state
    state.last_metrics["train/loss"] = 9.0
    assert restored.last_metrics == {"train/loss": 0.5}  # a copy, not the live dict


def test_a_missing_counter_fails_and_leaves_the_state_as_it_was():
    state = TrainState(global_step=4)
    saved = TrainState(global_step=9).state_dict()
    del saved["epoch_fresh"]
    with pytest.raises(KeyError, match="epoch_fresh"):
        state.load_state_dict(saved)
    assert state == TrainState(global_step=4)


def test_the_trainer_reads_its_counters_from_the_train_state(tmp_path):
    trainer, result = _fit(tmp_path, max_epochs=2)
    assert (trainer.global_step, trainer.current_epoch) == (8, 2) == (result.global_step, 2)
    latest = (tmp_path / "t" / "latest.ckpt").resolve()
    counters = read_checkpoint(latest)["train_state"]
    assert {k: counters[k] for k in ("epoch", "global_step", "epoch_fresh")} == {
        "epoch": 2,
        "global_step": 8,
        "epoch_fresh": True,
    }


def test_a_checkpoint_written_before_early_stops_were_recorded_resumes(tmp_path):
    _fit(tmp_path, max_epochs=1)
    latest = (tmp_path / "t" / "latest.ckpt").resolve()
    content = read_checkpoint(latest)
    del content["train_state"]["stopped_early_under"]
    write_checkpoint(latest, content)

    _, result = _fit(tmp_path, max_epochs=2)
    assert result.status.value == "completed" and result.global_step == 8


def test_a_checkpoint_without_a_counter_is_a_checkpoint_error_naming_it(tmp_path):
    _fit(tmp_path, max_epochs=1)
    latest = (tmp_path / "t" / "latest.ckpt").resolve()
    content = read_checkpoint(latest)
    del content["train_state"]["skipped_nonfinite"]
    write_checkpoint(latest, content)

    with pytest.raises(CheckpointError, match="skipped_nonfinite"):
        _fit(tmp_path, max_epochs=2)
