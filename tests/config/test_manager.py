"""ConfigurationManager: YAML/JSON by extension, ${ENV} substitution, validation errors raise."""

from __future__ import annotations

import json

import pytest

from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.experiment.manager import (
    ConfigurationManager,
    read_config_file,
    substitute_env_vars,
    write_config_file,
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "configs").mkdir()
    return tmp_path


def test_env_substitution_with_value_default_and_escape():
    env = {"ROOT": "/data", "EMPTY": ""}
    data = {
        "a": "${ROOT}/x",
        "b": "${MISSING:-fallback}",
        "c": ["${ROOT}", {"d": "${EMPTY:-used}"}],
        "e": "$${ROOT} stays",
        "f": 3,
        "g": "${EMPTY}",
    }
    assert substitute_env_vars(data, env) == {
        "a": "/data/x",
        "b": "fallback",
        "c": ["/data", {"d": "used"}],
        "e": "${ROOT} stays",
        "f": 3,
        "g": "",
    }


def test_unset_variable_without_default_names_variable_and_field():
    with pytest.raises(
        ConfigError, match=r"cfg\.data\.root: environment variable DATA_HOME is not set"
    ):
        substitute_env_vars({"data": {"root": "${DATA_HOME}/x"}}, {}, where="cfg")


def test_substitution_does_not_change_the_input():
    data = {"a": ["${X:-1}"]}
    substitute_env_vars(data, {})
    assert data == {"a": ["${X:-1}"]}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load_round_trip_by_extension(project, suffix):
    manager = ConfigurationManager(project, environ={})
    config = ExperimentConfig.from_dict(
        {"experiment_name": "run1", "optimizer": {"lr": 3e-4}, "model": {"hidden": 8}}
    )
    path = manager.save_config(config, f"run1{suffix}")
    assert path.parent == project / "configs"
    assert manager.load_config(f"run1{suffix}") == config
    assert manager.load_config("run1") == config  # bare name: extension found


def test_json_file_is_json(project):
    path = write_config_file(project / "c.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}


def test_load_config_substitutes_env_and_typed_fields_convert(project):
    (project / "configs" / "exp.yaml").write_text(
        "experiment_name: ${NAME:-dflt}\noptimizer:\n  lr: ${LR}\ndata:\n  root: ${ROOT:-/tmp}\n"
    )
    manager = ConfigurationManager(project, environ={"LR": "0.05"})
    config = manager.load_config("exp.yaml")
    assert config.experiment_name == "dflt"
    assert config.optimizer.lr == 0.05
    assert config.data == {"root": "/tmp"}


def test_yaml_scientific_notation_is_a_float(project):
    (project / "configs" / "c.yaml").write_text("model:\n  eps: 1e-5\n")
    assert read_config_file(project / "configs" / "c.yaml") == {"model": {"eps": 1e-5}}


def test_validation_errors_raise_config_error_with_the_file(project):
    (project / "configs" / "bad.yaml").write_text("training:\n  max_epochs: -1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*\n(.|\n)*max_epochs"):
        ConfigurationManager(project).load_config("bad.yaml")


def test_unknown_key_raises(project):
    (project / "configs" / "typo.yaml").write_text("optimzer:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="optimzer"):
        ConfigurationManager(project).load_config("typo")


def test_missing_file_lists_where_it_looked(project):
    with pytest.raises(ConfigError, match="looked for"):
        ConfigurationManager(project).load_config("nope.yaml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.txt", "a: 1", "unsupported config file extension"),
        ("c.yaml", "a: [1", "invalid YAML"),
        ("c.json", "{", "invalid JSON"),
        ("c.yaml", "- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_unreadable_files_are_config_errors(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config_file(tmp_path / name)


def test_writing_an_unserialisable_value_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="plain values"):
        write_config_file(tmp_path / "c.yaml", {"f": lambda: 1})
    assert not (tmp_path / "c.yaml").exists()


def test_config_dir_defaults_and_list_configs(project):
    manager = ConfigurationManager(project)
    assert manager.config_dir == project.resolve() / "configs"
    write_config_file(project / "configs" / "b.yaml", {})
    write_config_file(project / "configs" / "a.json", {})
    (project / "configs" / "notes.txt").write_text("x")
    assert [p.name for p in manager.list_configs()] == ["a.json", "b.yaml"]
    assert (
        ConfigurationManager(project, config_dir="other").config_dir == project.resolve() / "other"
    )


def test_strings_that_look_like_numbers_round_trip_as_strings(tmp_path):
    from model_training_framework.experiment.manager import read_config_file, write_config_file

    path = tmp_path / "c.yaml"
    write_config_file(path, {"model": {"tag": "1e-3", "lr": 1e-3}})
    assert read_config_file(path) == {"model": {"tag": "1e-3", "lr": 1e-3}}
