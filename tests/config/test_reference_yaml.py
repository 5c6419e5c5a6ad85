"""YAML written for the reference framework loads unchanged: old keys migrate with a
DeprecationWarning naming the new key, and sections given as null mean their defaults.

The files under ``reference_yaml/`` are typical reference-framework configs, written in our
own words.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.config import ExperimentConfig, SlurmConfig
from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    PreemptionConfig,
    SamplingStrategy,
)

FIXTURES = Path(__file__).parent / "reference_yaml"


def _load(cls, name: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = cls.from_yaml(FIXTURES / name)
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    return config, messages


def _round_trips_without_warnings(config, tmp_path: Path) -> None:
    config.to_yaml(tmp_path / "written.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what we write back holds no old key
        assert type(config).from_yaml(tmp_path / "written.yaml") == config


def test_basic_reference_experiment_loads_with_one_warning_per_old_key(tmp_path):
    exp, messages = _load(ExperimentConfig, "experiment_basic.yaml")
    assert len(messages) == 6
    for old, new in [
        ("data.num_workers", "performance.dataloader_num_workers"),
        ("optimizer.type", "optimizer.name"),
        ("training.gradient_accumulation_steps", "performance.gradient_accumulation_steps"),
    ]:
        assert any(old in m and new in m for m in messages), (old, messages)
    for switch in ("save_rng", "save_optimizer", "save_scheduler"):
        assert any(f"checkpoint.{switch}" in m and "always saved" in m for m in messages)
    assert exp.optimizer.name == "adamw"
    assert exp.performance.gradient_accumulation_steps == 2
    assert exp.slurm == SlurmConfig()
    assert exp.log_loss_every_n_steps is None
    assert exp.logging.log_scalars_every_n_steps is None
    assert exp.model == {"type": "mlp", "hidden_size": 64, "num_layers": 2}
    _round_trips_without_warnings(exp, tmp_path)


def test_cluster_reference_experiment_loads_with_every_key_migrated(tmp_path):
    exp, messages = _load(ExperimentConfig, "experiment_cluster.yaml")
    joined = "\n".join(messages)
    for new in (
        "optimizer.name",
        "optimizer.lr",
        "training.max_epochs",
        "performance.gradient_accumulation_steps",
        "performance.dataloader_num_workers",
        "train_loader_config",
        "performance.use_amp",
        "checkpoint.root_dir",
        "logging.logger_type: composite",
    ):
        assert new in joined, new
    assert (exp.optimizer.name, exp.optimizer.lr, exp.training.max_epochs) == ("sgd", 0.05, 20)
    assert exp.performance.gradient_accumulation_steps == 4
    assert exp.performance.dataloader_num_workers == 8
    assert exp.train_loader_config.sampling_strategy is SamplingStrategy.WEIGHTED
    assert (exp.performance.use_amp, exp.performance.amp_dtype) == (True, "bfloat16")
    assert exp.checkpoint.root_dir == "/scratch/checkpoints"
    assert exp.logging.logger_type == "composite"
    assert exp.logging.composite_loggers == ["tensorboard", "wandb"]
    assert (exp.slurm.gpus_per_node, exp.slurm.time) == (4, "1-00:00:00")
    _round_trips_without_warnings(exp, tmp_path)


def test_reference_trainer_config_loads_and_trains(tmp_path):
    config, messages = _load(GenericTrainerConfig, "trainer_config.yaml")
    assert any("train_loader_config" in m for m in messages)
    assert any("checkpoint.save_rng" in m for m in messages)
    assert config.preemption == PreemptionConfig()
    config.checkpoint.root_dir = tmp_path
    model = torch.nn.Linear(2, 1)
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        (x,) = batch
        return {"loss": trainer.model(x).pow(2).mean()}

    trainer.set_training_step(step)
    loaders = [DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2) for _ in range(2)]
    result = trainer.fit(train_loaders=loaders, max_epochs=2)
    assert (result.status.value, result.global_step) == ("completed", 8)
    assert not any(k.startswith("profile/") for k in result.metrics)
    _round_trips_without_warnings(config, tmp_path)


# ---------------------------------------------------------------- single rules


@pytest.mark.parametrize(
    ("logging", "logger_type", "composite"),
    [
        ({"use_wandb": True}, "wandb", None),
        ({"use_wandb": True, "logger_type": "wandb"}, "wandb", None),
        ({"use_wandb": True, "logger_type": "console"}, "composite", ["console", "wandb"]),
        (
            {"use_wandb": True, "logger_type": "composite", "composite_loggers": ["tensorboard"]},
            "composite",
            ["tensorboard", "wandb"],
        ),
        (
            # tensorboard was silently dropped: every logger the user listed is kept
            {"use_wandb": True, "logger_type": "console", "composite_loggers": ["tensorboard"]},
            "composite",
            ["console", "tensorboard", "wandb"],
        ),
        (
            {"use_wandb": True, "logger_type": "console", "composite_loggers": ["console"]},
            "composite",
            ["console", "wandb"],
        ),
        (
            {"use_wandb": True, "logger_type": "wandb", "composite_loggers": ["tensorboard"]},
            "composite",
            ["wandb", "tensorboard"],
        ),
        (
            {"use_wandb": True, "composite_loggers": ["tensorboard"]},
            "composite",
            ["tensorboard", "wandb"],
        ),
        ({"use_wandb": False}, "console", None),
        ({"use_wandb": False, "logger_type": "tensorboard"}, "tensorboard", None),
    ],
)
def test_use_wandb_becomes_logger_type(logging, logger_type, composite):
    with pytest.warns(DeprecationWarning, match=r"logging\.use_wandb.*logging\.logger_type"):
        config = GenericTrainerConfig.from_dict({"logging": logging})
    assert (config.logging.logger_type, config.logging.composite_loggers) == (
        logger_type,
        composite,
    )


def test_use_wandb_false_with_logger_type_wandb_is_a_conflict():
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="conflicts"):
        GenericTrainerConfig.from_dict({"logging": {"use_wandb": False, "logger_type": "wandb"}})


@pytest.mark.parametrize("key", ["save_rng", "save_optimizer", "save_scheduler"])
@pytest.mark.parametrize("value", [True, False])
def test_checkpoint_save_switches_are_accepted_and_say_the_state_is_always_saved(key, value):
    with pytest.warns(DeprecationWarning, match=rf"checkpoint\.{key}.*always saved"):
        config = GenericTrainerConfig.from_dict({"checkpoint": {key: value}})
    assert config.checkpoint == GenericTrainerConfig().checkpoint


def test_optimizer_type_conflicting_with_name_is_an_error():
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ConfigError, match=r"optimizer\.name: conflicts with the deprecated key"),
    ):
        ExperimentConfig.from_dict({"optimizer": {"type": "sgd", "name": "adamw"}})


@pytest.mark.parametrize(
    "section", ["checkpoint", "preemption", "performance", "logging", "validation", "hooks"]
)
def test_any_trainer_section_given_as_null_means_its_defaults(section):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = GenericTrainerConfig.from_dict({section: None})
    assert config == GenericTrainerConfig()


@pytest.mark.parametrize("section", ["slurm", "optimizer", "training"])
def test_any_experiment_section_given_as_null_means_its_defaults(section, tmp_path):
    (tmp_path / "e.yaml").write_text(f"experiment_name: e\n{section}:\n")
    assert ExperimentConfig.from_yaml(tmp_path / "e.yaml") == ExperimentConfig(experiment_name="e")


def test_constructor_names_what_became_of_a_dropped_key():
    with pytest.raises(ConfigError, match=r"'checkpoint\.save_rng' is no longer needed"):
        GenericTrainerConfig(checkpoint={"save_rng": True})
