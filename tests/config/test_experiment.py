"""ExperimentConfig: trainer fields plus model/data/optimizer/training/slurm sections."""

from __future__ import annotations

import pytest

from model_training_framework.config import (
    ExperimentConfig,
    OptimizerConfig,
    SlurmConfig,
    TrainingConfig,
)
from model_training_framework.errors import ConfigError
from model_training_framework.trainer import GenericTrainerConfig, MultiDataLoaderConfig


def test_defaults_match_the_design_contract():
    exp = ExperimentConfig()
    assert exp.model == {} and exp.data == {} and exp.custom_params == {}
    assert exp.optimizer == OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.0, kwargs={})
    assert exp.scheduler is None
    assert exp.training == TrainingConfig(max_epochs=1, max_steps=None)
    slurm = exp.slurm
    assert (slurm.account, slurm.partition, slurm.constraint, slurm.qos) == (None,) * 4
    assert (slurm.nodes, slurm.ntasks_per_node, slurm.gpus_per_node, slurm.cpus_per_task) == (
        1,
        1,
        0,
        1,
    )
    assert (slurm.mem, slurm.time, slurm.extra_directives, slurm.signal_grace_s) == (
        "4G",
        "01:00:00",
        [],
        120,
    )


def test_user_sections_accept_arbitrary_keys():
    exp = ExperimentConfig(
        model={"factory": "pkg.models.mlp", "hidden": [32], "anything": {"deep": True}},
        data={"whatever": 1, "x": [1, 2]},
        custom_params={"free": "form"},
    )
    assert exp.model["anything"] == {"deep": True}
    assert exp.data["x"] == [1, 2]


def test_empty_user_sections_in_yaml_mean_empty_dicts(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("model:\ndata:\ncustom_params:\n")
    exp = ExperimentConfig.from_yaml(path)
    assert (exp.model, exp.data, exp.custom_params) == ({}, {}, {})


def test_to_trainer_config_returns_independent_trainer_config():
    exp = ExperimentConfig(
        experiment_name="run_a",
        seed=3,
        train_loader_config=MultiDataLoaderConfig(dataloader_names=["a", "b"]),
        performance={"gradient_accumulation_steps": 2},
        model={"factory": "pkg.m.f"},
    )
    trainer_cfg = exp.to_trainer_config()
    assert type(trainer_cfg) is GenericTrainerConfig
    assert trainer_cfg.experiment_name == "run_a" and trainer_cfg.seed == 3
    assert trainer_cfg.train_loader_config.dataloader_names == ["a", "b"]
    assert trainer_cfg.performance.gradient_accumulation_steps == 2
    trainer_cfg.performance.gradient_accumulation_steps = 8
    trainer_cfg.train_loader_config.dataloader_names.append("c")
    assert exp.performance.gradient_accumulation_steps == 2
    assert exp.train_loader_config.dataloader_names == ["a", "b"]
    expected = {k: v for k, v in exp.to_dict().items() if k in GenericTrainerConfig.model_fields}
    assert exp.to_trainer_config().to_dict() == expected


def test_experiment_is_a_trainer_config_with_the_same_checks():
    assert issubclass(ExperimentConfig, GenericTrainerConfig)
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_weights: required"):
        ExperimentConfig(train_loader_config={"sampling_strategy": "weighted"})
    exp = ExperimentConfig()
    with pytest.raises(ConfigError, match=r"^training\.max_epochs"):
        exp.training.max_epochs = 0


# (section, field, bad value, expected fragment)
BAD_VALUES = [
    ("optimizer", "lr", 0, "greater than 0"),
    ("optimizer", "lr", -1e-3, "greater than 0"),
    ("optimizer", "weight_decay", -0.1, "greater than or equal to 0"),
    ("optimizer", "name", "", "at least 1"),
    ("training", "max_epochs", 0, "greater than or equal to 1"),
    ("training", "max_steps", 0, "greater than or equal to 1"),
    ("slurm", "nodes", 0, "greater than or equal to 1"),
    ("slurm", "ntasks_per_node", 0, "greater than or equal to 1"),
    ("slurm", "gpus_per_node", -1, "greater than or equal to 0"),
    ("slurm", "cpus_per_task", 0, "greater than or equal to 1"),
    ("slurm", "mem", "lots", "not a Slurm memory size"),
    ("slurm", "time", "1h", "not a Slurm time limit"),
    ("slurm", "time", "1:2:3:4", "not a Slurm time limit"),
    ("slurm", "account", "proj\n#SBATCH --x", "line break"),
    ("slurm", "partition", "", "at least 1"),
    ("slurm", "extra_directives", ["--exclusive", "a\nb"], "line break"),
    ("slurm", "signal_grace_s", 0, "greater than or equal to 1"),
    ("slurm", "signal_grace_s", 70000, "less than or equal to 65535"),
]


@pytest.mark.parametrize(("section", "field", "value", "fragment"), BAD_VALUES)
def test_bad_section_values_name_the_field_path(section, field, value, fragment):
    with pytest.raises(ConfigError, match=rf"^{section}\.{field}") as info:
        ExperimentConfig.from_dict({section: {field: value}})
    assert fragment in str(info.value)
    exp = ExperimentConfig()
    with pytest.raises(ConfigError, match=rf"^{section}\.{field}") as info:
        setattr(getattr(exp, section), field, value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("time", ["30", "01:00:00", "2-00:00:00", "1-12", "90:00"])
def test_slurm_time_formats(time):
    assert SlurmConfig(time=time).time == time


@pytest.mark.parametrize(
    ("scheduler", "fragment"),
    [
        ({"interval": "step"}, "needs a 'name'"),
        ({"name": "cosine", "interval": "batch"}, "interval must be 'step' or 'epoch'"),
    ],
)
def test_bad_scheduler_section(scheduler, fragment):
    with pytest.raises(ConfigError, match=r"^scheduler: ") as info:
        ExperimentConfig(scheduler=scheduler)
    assert fragment in str(info.value)


def test_scheduler_interval_any_case_and_extra_kwargs():
    exp = ExperimentConfig(scheduler={"name": "StepLR", "interval": "EPOCH", "step_size": 10})
    assert exp.scheduler == {"name": "StepLR", "interval": "epoch", "step_size": 10}


def test_model_factory_must_be_a_dotted_path():
    with pytest.raises(ConfigError, match=r"^model: 'factory' must be the dotted path"):
        ExperimentConfig(model={"factory": "not a path"})


def test_experiment_name_is_validated_for_directories():
    with pytest.raises(ConfigError, match=r"^experiment_name: "):
        ExperimentConfig(experiment_name="lr=0.1 bs=32")
    exp = ExperimentConfig()
    exp.experiment_name = "lr_0.1-bs_32"
    assert exp.experiment_name == "lr_0.1-bs_32"


@pytest.mark.parametrize("cls", [ExperimentConfig, GenericTrainerConfig])
def test_an_experiment_name_too_long_for_a_directory_is_refused_up_front(cls):
    # It used to pass validation and fail at fit with "cannot open the run directory lock ...
    # [Errno 36] File name too long ...; the run directory must be writable (check
    # checkpoint.root_dir and its permissions)".
    with pytest.raises(ConfigError, match=r"^experiment_name: .*255"):
        cls(experiment_name="a" * 256)
    config = cls(experiment_name="a" * 255)
    with pytest.raises(ConfigError, match=r"^experiment_name: .*255"):
        config.experiment_name = "b" * 300
    assert config.experiment_name == "a" * 255


def test_every_experiment_field_has_a_description():
    for model in (ExperimentConfig, OptimizerConfig, TrainingConfig, SlurmConfig):
        for name, field in model.model_fields.items():
            assert field.description and len(field.description) > 5, f"{model.__name__}.{name}"


def test_config_package_exports_names_lazily():
    import model_training_framework.config as config_pkg

    for name in config_pkg.__all__:
        assert getattr(config_pkg, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        config_pkg.Nope  # noqa: B018
