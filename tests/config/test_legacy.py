"""Renamed config keys: migrated with a DeprecationWarning naming the new key."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from model_training_framework.config import ExperimentConfig
from model_training_framework.config.legacy import TRAINER_RULES, migrate_legacy_keys
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import OptimizerConfig, TrainingConfig
from model_training_framework.trainer import (
    CheckpointConfig,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    PerformanceConfig,
    SamplingStrategy,
)

BOTH = [GenericTrainerConfig, ExperimentConfig]


@pytest.mark.parametrize("cls", BOTH)
def test_multi_becomes_train_loader_config(cls):
    data = {"multi": {"sampling_strategy": "weighted", "dataloader_weights": [1, 3]}}
    with pytest.warns(DeprecationWarning, match="train_loader_config"):
        cfg = cls.from_dict(data)
    assert cfg.train_loader_config.sampling_strategy is SamplingStrategy.WEIGHTED
    assert cfg.train_loader_config.dataloader_weights == [1.0, 3.0]
    assert cfg.val_loader_config.sampling_strategy is SamplingStrategy.SEQUENTIAL


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    ("value", "use_amp", "amp_dtype"),
    [
        ("16-mixed", True, "float16"),
        ("bf16-mixed", True, "bfloat16"),
        ("BF16-Mixed", True, "bfloat16"),
        (16, True, "float16"),
        ("32", False, "bfloat16"),
        ("32-true", False, "bfloat16"),
        (None, False, "bfloat16"),
    ],
)
def test_mixed_precision_becomes_use_amp_and_amp_dtype(cls, value, use_amp, amp_dtype):
    with pytest.warns(DeprecationWarning, match=r"performance\.use_amp"):
        cfg = cls.from_dict({"performance": {"mixed_precision": value}})
    assert (cfg.performance.use_amp, cfg.performance.amp_dtype) == (use_amp, amp_dtype)


def test_unknown_mixed_precision_value_lists_accepted_ones():
    with pytest.raises(
        ConfigError, match=r"performance\.mixed_precision: unknown precision 'fp8'.*16-mixed"
    ):
        GenericTrainerConfig.from_dict({"performance": {"mixed_precision": "fp8"}})


def test_mixed_precision_conflicting_with_use_amp_is_an_error():
    data = {"performance": {"mixed_precision": "16-mixed", "use_amp": False}}
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ConfigError, match=r"performance\.use_amp: conflicts"),
    ):
        GenericTrainerConfig.from_dict(data)


def test_mixed_precision_agreeing_with_new_keys_is_accepted():
    data = {"performance": {"mixed_precision": "16-mixed", "use_amp": True, "amp_dtype": "float16"}}
    with pytest.warns(DeprecationWarning):
        cfg = GenericTrainerConfig.from_dict(data)
    assert cfg.performance.use_amp is True


@pytest.mark.parametrize("cls", BOTH)
def test_checkpoint_dir_becomes_root_dir(cls):
    with pytest.warns(DeprecationWarning, match=r"checkpoint\.root_dir"):
        cfg = cls.from_dict({"checkpoint": {"checkpoint_dir": "/scratch/runs"}})
    assert cfg.checkpoint.root_dir == "/scratch/runs"


def test_data_num_workers_becomes_performance_dataloader_num_workers():
    with pytest.warns(DeprecationWarning, match=r"performance\.dataloader_num_workers"):
        exp = ExperimentConfig.from_dict({"data": {"num_workers": 4, "root": "/d"}})
    assert exp.performance.dataloader_num_workers == 4
    assert exp.data == {"root": "/d"}


def test_training_epochs_becomes_max_epochs():
    with pytest.warns(DeprecationWarning, match=r"training\.max_epochs"):
        exp = ExperimentConfig.from_dict({"training": {"epochs": 7}})
    assert exp.training.max_epochs == 7


def test_optimizer_learning_rate_becomes_lr():
    with pytest.warns(DeprecationWarning, match=r"optimizer\.lr"):
        exp = ExperimentConfig.from_dict({"optimizer": {"learning_rate": 0.05}})
    assert exp.optimizer.lr == 0.05


def test_legacy_keys_work_from_yaml(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        "multi:\n  dataloader_names: [a]\n"
        "performance:\n  mixed_precision: bf16-mixed\n"
        "data:\n  num_workers: 2\n"
        "training:\n  epochs: 5\n"
        "optimizer:\n  learning_rate: 1e-3\n"
        "checkpoint:\n  checkpoint_dir: out\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = ExperimentConfig.from_yaml(path)
    messages = " ".join(str(w.message) for w in caught if w.category is DeprecationWarning)
    for new_key in (
        "train_loader_config",
        "performance.use_amp",
        "performance.dataloader_num_workers",
        "training.max_epochs",
        "optimizer.lr",
        "checkpoint.root_dir",
    ):
        assert new_key in messages
    assert exp.train_loader_config.dataloader_names == ["a"]
    assert exp.performance.use_amp and exp.performance.amp_dtype == "bfloat16"
    assert (exp.performance.dataloader_num_workers, exp.training.max_epochs) == (2, 5)
    assert (exp.optimizer.lr, exp.checkpoint.root_dir) == (1e-3, "out")


@pytest.mark.parametrize(
    "data",
    [
        {"multi": {"burst_size": 2}, "train_loader_config": {"burst_size": 3}},
        {"checkpoint": {"checkpoint_dir": "a", "root_dir": "b"}},
        {"data": {"num_workers": 2}, "performance": {"dataloader_num_workers": 3}},
        {"training": {"epochs": 2, "max_epochs": 3}},
        {"optimizer": {"learning_rate": 0.1, "lr": 0.2}},
    ],
)
def test_old_and_new_key_with_different_values_is_an_error(data):
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ConfigError, match="conflicts with the deprecated key"),
    ):
        ExperimentConfig.from_dict(data)


def test_old_and_new_key_with_equal_values_is_accepted():
    with pytest.warns(DeprecationWarning):
        exp = ExperimentConfig.from_dict({"training": {"epochs": 3, "max_epochs": 3}})
    assert exp.training.max_epochs == 3


def test_experiment_only_keys_are_unknown_for_the_trainer_config():
    with pytest.raises(ConfigError, match=r"^data: unknown key"):
        GenericTrainerConfig.from_dict({"data": {"num_workers": 2}})


@pytest.mark.parametrize("section", ["model", "data", "optimizer", "training", "slurm"])
def test_an_experiment_section_in_a_trainer_config_says_where_it_belongs(section):
    # 'training' used to get "did you mean 'profile_training'?"
    with pytest.raises(ConfigError, match=rf"^{section}: unknown key; .*ExperimentConfig") as err:
        GenericTrainerConfig.from_dict({section: {}})
    assert "did you mean" not in str(err.value)


def test_the_trainer_config_names_every_experiment_only_section():
    extra = set(ExperimentConfig.model_fields) - set(GenericTrainerConfig.model_fields)
    assert set(GenericTrainerConfig._sections_of_subclasses) == extra


def test_constructor_points_to_from_dict_for_old_keys():
    with pytest.raises(
        ConfigError, match=r"^multi: unknown key; 'multi' was renamed to 'train_loader_config'"
    ):
        GenericTrainerConfig(multi={})
    with pytest.raises(
        ConfigError, match=r"performance\.mixed_precision.*renamed to 'performance\.use_amp"
    ):
        GenericTrainerConfig(performance={"mixed_precision": "16-mixed"})


def _trainer_config() -> GenericTrainerConfig:
    return GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig(dataloader_names=["a"]))


@pytest.mark.parametrize(
    ("section", "old", "new"),
    [
        ("", "multi", "train_loader_config"),
        ("checkpoint", "checkpoint_dir", "checkpoint.root_dir"),
        ("performance", "mixed_precision", "performance.use_amp"),
    ],
)
def test_assigning_or_reading_an_old_attribute_names_the_new_key(section, old, new):
    # The guide writes the renames as attributes (`config.multi` -> `config.train_loader_config`).
    config = _trainer_config()
    owner = getattr(config, section) if section else config
    path = f"{section}.{old}" if section else old
    with pytest.raises(ConfigError, match=rf"^{path}: unknown key; .*renamed to '{new}'"):
        setattr(owner, old, "x")
    with pytest.raises(AttributeError, match=rf"'{path}' was renamed to '{new}'"):
        getattr(owner, old)


def test_unknown_attributes_still_raise_a_plain_attribute_error():
    config = _trainer_config()
    with pytest.raises(AttributeError, match=r"no attribute 'nonsense'$"):
        config.nonsense  # noqa: B018
    assert not hasattr(config.checkpoint, "nonsense")


@pytest.mark.parametrize(
    ("make", "new"),
    [
        (lambda: CheckpointConfig(checkpoint_dir="out"), "checkpoint.root_dir"),
        (lambda: PerformanceConfig(mixed_precision="16-mixed"), "performance.use_amp"),
        (lambda: TrainingConfig(epochs=3), "training.max_epochs"),
        (lambda: OptimizerConfig(learning_rate=0.1), "optimizer.lr"),
    ],
)
def test_a_section_built_with_an_old_key_names_the_new_key(make, new):
    # CheckpointConfig(checkpoint_dir=...) used to suggest 'max_checkpoints'.
    with pytest.raises(ConfigError, match=rf"unknown key; .*renamed to '{new}'") as caught:
        make()
    assert "did you mean" not in str(caught.value)


def test_migrate_legacy_keys_is_silent_without_old_keys():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert migrate_legacy_keys({"seed": 1}, TRAINER_RULES) == {"seed": 1}


_OLD_KEYS_YAML = """\
checkpoint: {checkpoint_dir: old_runs, save_rng: true}
performance: {mixed_precision: bf16-mixed}
"""


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("source", ["yaml", "dict"])
def test_old_key_warnings_point_at_the_users_call(cls, source, tmp_path):
    # Python's default filters show a DeprecationWarning only when it is attributed to
    # __main__: attributed to a frame inside the package, a script calling from_yaml (and
    # `mtf train`) never showed it.
    path = tmp_path / "old.yaml"
    path.write_text(_OLD_KEYS_YAML, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if source == "yaml":
            cls.from_yaml(path)
        else:
            cls.from_dict(yaml.safe_load(_OLD_KEYS_YAML))
    assert len(caught) == 3
    assert {Path(item.filename) for item in caught} == {Path(__file__)}


def test_a_script_reading_old_keys_from_yaml_shows_the_warning(tmp_path):
    (tmp_path / "old.yaml").write_text(_OLD_KEYS_YAML, encoding="utf-8")
    script = tmp_path / "script.py"
    script.write_text(
        "from model_training_framework.trainer import GenericTrainerConfig\n"
        "GenericTrainerConfig.from_yaml('old.yaml')\n",
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "use 'checkpoint.root_dir' instead" in done.stderr
    assert "use 'performance.use_amp" in done.stderr
    assert "checkpoint.save_rng' is deprecated and ignored" in done.stderr
