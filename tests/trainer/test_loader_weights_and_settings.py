"""GenericTrainer: loader weights changed before and during fit, and loader settings the schedule ignores."""

from __future__ import annotations

import logging

import pytest

from model_training_framework.trainer import (
    EpochLengthPolicy,
    SamplingStrategy,
    TrainerHooks,
)

from .fit_helpers import (
    make_config,
    make_loader,
    make_trainer,
    mse_step,
)


def test_update_loader_weights_takes_effect_mid_run(tmp_path):
    counts = [0, 0]

    class Switch(TrainerHooks):
        def on_after_optimizer_step(self, trainer, optimizer_idx):
            if trainer.global_step == 10:
                trainer.update_loader_weights([0.0001, 1.0])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        if trainer.global_step >= 10:
            counts[dataloader_idx] += 1
        return mse_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)

    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 0.0001],
        "epoch_length_policy": EpochLengthPolicy.FIXED_NUM_STEPS,
        "steps_per_epoch": 20,
    }
    trainer = make_trainer(make_config(tmp_path, loader=loader_cfg), step=step)
    trainer.add_hook(Switch())
    trainer.fit([make_loader(), make_loader(8, 1)], max_epochs=1)
    assert counts[1] >= 9


def test_weights_set_by_a_hook_are_kept_by_the_schedule_across_a_resume(tmp_path):
    class Curriculum(TrainerHooks):
        def on_train_start(self, trainer):
            trainer.update_loader_weights([1.0, 3.0])

    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 1.0],
        "dataloader_names": ["a", "b"],
    }
    cfg = make_config(tmp_path, loader=loader_cfg)
    first = make_trainer(cfg)
    first.add_hook(Curriculum())
    first.fit([make_loader(16), make_loader(16, 1)], max_epochs=1)
    assert cfg.train_loader_config.dataloader_weights == [1.0, 1.0]  # the user's config

    # The same config without the hook: the checkpoint's schedule keeps the hook's weights.
    result = make_trainer(make_config(tmp_path, loader=loader_cfg)).fit(
        [make_loader(16), make_loader(16, 1)], max_epochs=2
    )
    assert result.epoch == 2
    assert result.metrics["train/loader_share/dl_b"] == 0.75  # 6 of the epoch's 8 batches
    assert result.metrics["train/loader_share_target/dl_b"] == 0.75


def test_weights_set_before_fit_are_the_ones_the_fit_starts_with(tmp_path):
    loader_cfg = {
        "sampling_strategy": SamplingStrategy.WEIGHTED,
        "dataloader_weights": [1.0, 1.0],
        "dataloader_names": ["a", "b"],
    }
    cfg = make_config(tmp_path, loader=loader_cfg)
    trainer = make_trainer(cfg)
    trainer.update_loader_weights([3.0, 1.0])

    result = trainer.fit([make_loader(16), make_loader(16, 1)], max_epochs=1)
    assert result.metrics["train/loader_share/dl_a"] == 0.75
    assert cfg.train_loader_config.dataloader_weights == [1.0, 1.0]


def test_weights_set_before_fit_of_a_schedule_without_weights_are_an_error(tmp_path):
    # Called during fit this raised; called before fit the weights were silently ignored.
    trainer = make_trainer(make_config(tmp_path, loader={"dataloader_names": ["a", "b"]}))
    trainer.update_loader_weights([3.0, 1.0])
    with pytest.raises(ValueError, match=r"update_loader_weights.*WEIGHTED.*ROUND_ROBIN"):
        trainer.fit([make_loader(16), make_loader(16, 1)], max_epochs=1)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("loader", "ignored", "applies"),
    [
        ({"steps_per_epoch": 10}, "steps_per_epoch=10", "epoch_length_policy 'fixed_num_steps'"),
        ({"dataloader_weights": [1.0, 2.0]}, "dataloader_weights=[1.0, 2.0]", "'weighted'"),
        ({"alternating_pattern": [0, 1]}, "alternating_pattern=[0, 1]", "'alternating'"),
        ({"sampling_strategy": "sequential", "burst_size": 3}, "burst_size=3", "'sequential'"),
    ],
)
def test_a_loader_setting_the_schedule_ignores_is_named_in_a_warning(
    tmp_path, caplog, loader, ignored, applies
):
    # They trained as if unset, silently (e.g. steps_per_epoch under sum_of_lengths).
    trainer = make_trainer(make_config(tmp_path, loader=loader))
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        trainer.fit([make_loader(), make_loader(8, 1)], max_epochs=1)
    warned = [r.getMessage() for r in caplog.records if ignored in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("train_loader_config.")
    assert "has no effect" in warned[0] and applies in warned[0]


def test_loader_settings_in_use_do_not_warn(tmp_path, caplog):
    loader = {"sampling_strategy": "weighted", "dataloader_weights": [1.0, 2.0], "burst_size": 2}
    with caplog.at_level(logging.WARNING, logger="model_training_framework"):
        make_trainer(make_config(tmp_path, loader=loader)).fit(
            [make_loader(), make_loader(8, 1)], max_epochs=1
        )
    assert not [r for r in caplog.records if "has no effect" in r.getMessage()]
