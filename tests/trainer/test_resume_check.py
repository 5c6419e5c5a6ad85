"""Resuming with a changed configuration: errors before any write, warnings that list the keys."""

from __future__ import annotations

import logging

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
from model_training_framework.trainer.state.file_format import read_checkpoint, write_checkpoint
from model_training_framework.trainer.state.layout import OPTIMIZER_HPARAMS, RUN_KEY

LOGGER = "model_training_framework.trainer.state.resume_check"


def _loaders(num=2):
    g = torch.Generator().manual_seed(0)
    return [
        DataLoader(TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1)), batch_size=4)
        for _ in range(num)
    ]


def _trainer(root, *, hidden=8, lr=0.1, names=("a", "b"), weights=(2.0, 1.0), **config):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Linear(hidden, 1))
    config.setdefault(
        "train_loader_config",
        MultiDataLoaderConfig(
            sampling_strategy="weighted",
            dataloader_names=list(names),
            dataloader_weights=list(weights),
        ),
    )
    cfg = GenericTrainerConfig(
        experiment_name="changed",
        seed=0,
        checkpoint={"root_dir": str(root)},
        logging={"progress_bar": False},
        **config,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    trainer = GenericTrainer(cfg, model, [optimizer], [scheduler])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    return trainer


def _snapshot(folder):
    return {
        path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture
def first_run(tmp_path):
    _trainer(tmp_path).fit(_loaders(), max_epochs=1)
    return tmp_path


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_rerun_of_the_same_configuration_resumes_without_a_warning(first_run, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = _trainer(first_run).fit(_loaders(), max_epochs=2)

    assert result.global_step == 16  # 2 epochs of 8 batches
    assert _warnings(caplog) == []


def test_a_changed_learning_rate_warns_naming_the_key_and_that_the_checkpoint_value_stays(
    first_run, caplog
):
    trainer = _trainer(first_run, lr=0.5)
    seen = []

    class Probe(TrainerHooks):
        def on_train_start(self, trainer):
            seen.append(trainer.optimizers[0].param_groups[0]["initial_lr"])

    trainer.add_hook(Probe())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.fit(_loaders(), max_epochs=2)

    (message,) = _warnings(caplog)
    assert "optimizers[0].param_groups[0].lr: 0.1 -> 0.5" in message
    assert "optimizers[0].param_groups[0].initial_lr: 0.1 -> 0.5" in message
    assert "do not take effect" in message
    assert seen == [0.1]  # what the warning says: the checkpoint's optimizer state wins


def test_a_changed_width_is_an_error_listing_the_shapes_and_nothing_is_written(first_run):
    run_dir = first_run / "changed"
    before = _snapshot(run_dir)

    with pytest.raises(CheckpointError, match="does not fit this run; nothing was written") as err:
        _trainer(first_run, hidden=16).fit(_loaders(), max_epochs=2)

    message = str(err.value)
    assert "model.0.weight: [8, 4] -> [16, 4]" in message
    assert "model.1.weight: [1, 8] -> [1, 16]" in message
    assert "another experiment_name" in message
    assert _snapshot(run_dir) == before


def test_other_train_loaders_are_an_error_even_with_schedule_changes_allowed(first_run):
    trainer = _trainer(
        first_run,
        names=("a", "c"),
        fault_tolerance={"allow_schedule_changes_on_resume": True},
    )

    with pytest.raises(CheckpointError) as err:
        trainer.fit(_loaders(), max_epochs=2)

    assert "train_loaders.names: ['a', 'b'] -> ['a', 'c']" in str(err.value)
    assert "train_loader_config.dataloader_names" in str(err.value)


def test_a_different_number_of_loaders_is_an_error_before_any_write(first_run):
    before = _snapshot(first_run / "changed")
    trainer = _trainer(first_run, names=("a", "b", "c"), weights=(1.0, 1.0, 1.0))

    with pytest.raises(CheckpointError) as err:
        trainer.fit(_loaders(3), max_epochs=2)

    assert "train_loaders.lengths: [4, 4] -> [4, 4, 4]" in str(err.value)

    assert _snapshot(first_run / "changed") == before


def test_changed_gradient_accumulation_is_an_error_that_names_the_switch(first_run):
    before = _snapshot(first_run / "changed")

    with pytest.raises(CheckpointError) as err:
        _trainer(first_run, performance={"gradient_accumulation_steps": 2}).fit(
            _loaders(), max_epochs=2
        )

    message = str(err.value)
    assert "performance.gradient_accumulation_steps: 1 -> 2" in message
    assert "fault_tolerance.allow_schedule_changes_on_resume: true" in message
    assert _snapshot(first_run / "changed") == before


def test_allowed_schedule_changes_warn_and_apply_from_the_resumed_step(first_run, caplog):
    trainer = _trainer(
        first_run,
        weights=(1.0, 3.0),
        performance={"gradient_accumulation_steps": 2},
        fault_tolerance={"allow_schedule_changes_on_resume": True},
    )
    taken = []

    class Count(TrainerHooks):
        def on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, name):
            taken.append(dataloader_idx)

    trainer.add_hook(Count())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = trainer.fit(_loaders(), max_epochs=2)

    (message,) = _warnings(caplog)
    assert "train_loader_config.dataloader_weights: [2.0, 1.0] -> [1.0, 3.0]" in message
    assert "performance.gradient_accumulation_steps: 1 -> 2" in message
    assert result.global_step == 8 + 4  # epoch 2: 8 batches in windows of 2
    assert taken.count(1) == 6 and taken.count(0) == 2  # weights 1:3 over the 8 batches


def test_other_config_changes_are_listed_in_one_warning(first_run, caplog):
    trainer = _trainer(first_run, log_loss_every_n_steps=3)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.fit(_loaders(), max_epochs=2)

    (message,) = _warnings(caplog)
    assert "log_loss_every_n_steps: 50 -> 3" in message
    assert "optimizers" not in message


def test_weights_changed_by_a_hook_during_the_run_are_not_a_config_change(tmp_path, caplog):
    class Curriculum(TrainerHooks):
        def on_train_start(self, trainer):
            trainer.update_loader_weights([1.0, 1.0])

    first = _trainer(tmp_path)
    first.add_hook(Curriculum())
    first.fit(_loaders(), max_epochs=1)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _trainer(tmp_path).fit(_loaders(), max_epochs=2)  # the same script, rerun

    assert _warnings(caplog) == []


def test_a_checkpoint_without_recorded_hyperparameters_is_compared_without_them(first_run, caplog):
    latest = (first_run / "changed" / "latest.ckpt").resolve()
    content = read_checkpoint(latest)
    content[RUN_KEY][OPTIMIZER_HPARAMS] = None  # as read from a file written before then
    write_checkpoint(latest, content)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _trainer(first_run, lr=0.5).fit(_loaders(), max_epochs=2)

    assert _warnings(caplog) == []
