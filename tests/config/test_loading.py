"""from_dict / to_dict / YAML round trips, unknown-key suggestions, dotted paths."""

from __future__ import annotations

import collections
import json
import os.path

import pytest
import yaml

from model_training_framework.config import ExperimentConfig
from model_training_framework.config.loading import dotted_path_of, import_object, to_plain
from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    FaultToleranceConfig,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    SamplingStrategy,
    ValAggregation,
)


def _rich_trainer_config() -> GenericTrainerConfig:
    return GenericTrainerConfig(
        experiment_name="exp-1.a_b",
        seed=7,
        device="cuda:1",
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.WEIGHTED,
            dataloader_names=["a", "b"],
            dataloader_weights=[0.25, 0.75],
            epoch_length_policy="fixed_num_steps",
            steps_per_epoch=100,
            burst_size=2,
        ),
        val_loader_config={"dataloader_names": ["v"]},
        per_loader_optimizer_id=[0, 1],
        loss_weights_per_loader=[1.0, 0.5],
        early_stopping_patience=3,
        early_stopping_mode="max",
        early_stopping_min_delta=1e-4,
        on_nonfinite_loss="skip",
        checkpoint={"save_every_n_minutes": 2.5, "monitor_metric": "val/acc", "async_save": True},
        preemption={"signal": "SIGUSR2", "max_checkpoint_sec": 60},
        performance={"gradient_accumulation_steps": 4, "clip_grad_norm": 1.0, "use_amp": True},
        logging={"logger_type": "composite", "composite_loggers": ["console", "wandb"]},
        validation={
            "frequency": "every_n_steps",
            "every_n_steps": 50,
            "aggregation": "custom",
            "aggregation_fn": "json.dumps",
        },
        hooks={"hook_classes": ["pkg.mod.Hook"], "hook_configs": {"pkg.mod.Hook": {"x": [1, 2]}}},
        warm_start={"loader_class": "pkg.mod.load", "checkpoint_path": "/ckpt/a.ckpt"},
    )


def _contains_only_plain_types(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _contains_only_plain_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_contains_only_plain_types(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def test_to_dict_has_plain_types_and_enum_values():
    data = _rich_trainer_config().to_dict()
    assert _contains_only_plain_types(data)
    assert data["train_loader_config"]["sampling_strategy"] == "weighted"
    assert data["validation"]["aggregation"] == "custom"
    yaml.safe_dump(data)  # must not raise


def test_from_dict_of_to_dict_is_equal():
    cfg = _rich_trainer_config()
    assert GenericTrainerConfig.from_dict(cfg.to_dict()) == cfg
    assert (
        GenericTrainerConfig.from_dict(GenericTrainerConfig().to_dict()) == GenericTrainerConfig()
    )


def test_from_dict_differs_when_a_value_differs():
    data = _rich_trainer_config().to_dict()
    data["train_loader_config"]["burst_size"] = 3
    assert GenericTrainerConfig.from_dict(data) != _rich_trainer_config()


def test_yaml_round_trip_is_plain_and_equal(tmp_path):
    cfg = _rich_trainer_config()
    path = tmp_path / "sub" / "config.yaml"
    text = cfg.to_yaml(path)
    assert path.read_text() == text
    assert "!!python" not in text and "!!" not in text
    assert yaml.safe_load(text) == cfg.to_dict()
    assert GenericTrainerConfig.from_yaml(path) == cfg


def test_experiment_yaml_round_trip_with_user_sections(tmp_path):
    exp = ExperimentConfig(
        experiment_name="sweep_lr_0.001",
        model={"factory": "pkg.models.build", "hidden": [64, 64], "act": "1e-3", "t": "1:30"},
        data={"root": "/data", "batch_size": 32, "ratio": 1e-7, "inf": float("inf")},
        optimizer={"name": "sgd", "lr": 0.1, "kwargs": {"momentum": 0.9}},
        scheduler={"name": "cosine", "interval": "epoch", "eta_min": 1e-6},
        training={"max_epochs": 3, "max_steps": 1000},
        slurm={"account": "proj", "partition": "gpu", "gpus_per_node": 4, "time": "2-00:00:00"},
        custom_params={"note": "yes", "nested": {"a": None}},
    )
    path = tmp_path / "exp.yaml"
    text = exp.to_yaml(path)
    assert "!!" not in text
    back = ExperimentConfig.from_yaml(path)
    assert back == exp
    assert back.model["act"] == "1e-3" and back.model["t"] == "1:30"  # strings stay strings
    assert yaml.safe_load(text)["model"]["act"] == "1e-3"  # also for plain safe_load readers


def test_from_yaml_reads_scientific_notation_as_float(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("optimizer:\n  lr: 3e-4\nscheduler:\n  name: cosine\n  eta_min: 1e-6\n")
    exp = ExperimentConfig.from_yaml(path)
    assert exp.optimizer.lr == pytest.approx(3e-4)
    assert exp.scheduler["eta_min"] == pytest.approx(1e-6)


def test_to_yaml_without_path_returns_text_only(tmp_path):
    text = GenericTrainerConfig(seed=1).to_yaml()
    assert "seed: 1" in text
    assert list(tmp_path.iterdir()) == []


def test_from_yaml_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert GenericTrainerConfig.from_yaml(path) == GenericTrainerConfig()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("seed: [1\n", "invalid YAML"),
        ("a: !!python/object:os.system {}\n", "invalid YAML"),
    ],
)
def test_from_yaml_bad_files_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig.from_yaml(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_from_yaml_validation_error_names_file_and_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_loader_config:\n  dataloader_weights: [1, -2]\n")
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig.from_yaml(path)
    assert str(path) in str(info.value)
    assert "train_loader_config.dataloader_weights[1]: " in str(info.value)


def test_hook_classes_with_every_entry_commented_out_means_no_hooks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "train_loader_config: {}\nhooks:\n  hook_classes:\n  #  - my_project.hooks.Ema\n"
        "  hook_configs: null\n"
    )
    config = GenericTrainerConfig.from_yaml(path)
    assert config.hooks.hook_classes == [] and config.hooks.hook_configs == {}
    assert config == GenericTrainerConfig(train_loader_config={})


@pytest.mark.parametrize(
    "text",
    [
        "distributed:\n  fsdp_wrap: null\n",
        "model:\n",
        "data: null\n",
        "optimizer:\n  kwargs:\n",
        "slurm:\n  extra_directives:\n",
        "custom_params:\n",
    ],
)
def test_any_list_or_mapping_written_empty_is_empty_in_an_experiment(tmp_path, text):
    path = tmp_path / "e.yaml"
    path.write_text(f"experiment_name: e\n{text}")
    assert ExperimentConfig.from_yaml(path) == ExperimentConfig(experiment_name="e")


def test_a_null_entry_in_a_list_is_still_an_error_naming_its_index():
    with pytest.raises(ConfigError, match=r"hooks\.hook_classes\[0\]"):
        GenericTrainerConfig.from_dict({"hooks": {"hook_classes": [None]}})


def test_from_yaml_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        GenericTrainerConfig.from_yaml(tmp_path / "nope.yaml")


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        GenericTrainerConfig.from_dict(["seed", 1])


def test_from_dict_does_not_modify_its_input():
    data = {"multi": {"dataloader_names": ["a"]}, "performance": {"mixed_precision": "bf16-mixed"}}
    snapshot = json.loads(json.dumps(data))
    with pytest.warns(DeprecationWarning):
        GenericTrainerConfig.from_dict(data)
    assert data == snapshot


# ----------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("data", "path", "suggestion"),
    [
        ({"sed": 1}, "sed", "'seed'"),
        (
            {"performance": {"gradient_acumulation_steps": 2}},
            "performance.gradient_acumulation_steps",
            "'gradient_accumulation_steps'",
        ),
        (
            {"train_loader_config": {"dataloader_weight": [1]}},
            "train_loader_config.dataloader_weight",
            "'dataloader_weights'",
        ),
        (
            {"val_loader_config": {"sampling_stratgy": "weighted"}},
            "val_loader_config.sampling_stratgy",
            "'sampling_strategy'",
        ),
        (
            {"warm_start": {"loader_class": "a.b", "strickt": True}},
            "warm_start.strickt",
            "'strict'",
        ),
        ({"checkpoint": {"max_checkpoint": 2}}, "checkpoint.max_checkpoint", "'max_checkpoints'"),
    ],
)
def test_unknown_keys_name_full_path_and_suggest_close_matches(data, path, suggestion):
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig.from_dict(data)
    message = str(info.value)
    assert message.startswith(f"{path}: unknown key; did you mean ")
    assert suggestion in message


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig.from_dict({"fault_tolerance": {"zzz": 1}})
    valid = ", ".join(sorted(FaultToleranceConfig.model_fields))
    assert "record_data_fingerprint" in valid
    assert f"fault_tolerance.zzz: unknown key; valid keys here: {valid}" in str(info.value)


def test_unknown_keyword_in_constructor_is_suggested_too():
    with pytest.raises(ConfigError, match=r"^early_stoping_patience: .*'early_stopping_patience'"):
        GenericTrainerConfig(early_stoping_patience=3)


def test_unknown_keys_in_experiment_sections():
    with pytest.raises(ConfigError, match=r"^optimizer\.weight_decya: .*'weight_decay'"):
        ExperimentConfig.from_dict({"optimizer": {"weight_decya": 0.1}})
    with pytest.raises(ConfigError, match=r"^slurm\.gpus_per_nod: .*'gpus_per_node'"):
        ExperimentConfig.from_dict({"slurm": {"gpus_per_nod": 1}})


def test_every_problem_is_reported_on_its_own_line():
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig.from_dict({"seed": "x", "performance": {"use_ampp": True}})
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["seed", "performance.use_ampp"]


def test_config_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- dotted paths


def test_import_object_and_dotted_path_round_trip():
    assert import_object("json.dumps") is json.dumps
    assert import_object("os.path.join") is os.path.join
    assert import_object("collections.OrderedDict.fromkeys") == collections.OrderedDict.fromkeys
    assert dotted_path_of(json.dumps) == "json.dumps"
    assert dotted_path_of(collections.OrderedDict) == "collections.OrderedDict"


@pytest.mark.parametrize("path", ["json.nope", "no_such_module_xyz.fn", "nodots"])
def test_import_object_errors_name_the_path(path):
    with pytest.raises(ImportError, match=path):
        import_object(path)


def test_dotted_path_of_rejects_partials_and_instances():
    import functools

    with pytest.raises(ValueError, match="no importable name"):
        dotted_path_of(functools.partial(json.dumps, indent=2))


def test_to_plain_rejects_unrepresentable_values_with_path():
    with pytest.raises(ConfigError, match=r"^model\.obj: a object cannot be written"):
        to_plain({"obj": object()}, "model")


def test_to_plain_converts_enums_tuples_and_paths(tmp_path):
    plain = to_plain({"e": ValAggregation.CUSTOM, "t": (1, 2), "p": tmp_path})
    assert plain == {"e": "custom", "t": [1, 2], "p": str(tmp_path)}


def test_import_object_reports_a_missing_dependency_of_an_existing_module(tmp_path, monkeypatch):
    # 'dep_probe_extra' exists but imports the missing 'dep_probe': the missing import must
    # surface, not be mistaken for 'dep_probe_extra' itself being absent (a name prefix).
    (tmp_path / "dep_probe_extra.py").write_text("import dep_probe\nvalue = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="dep_probe'"):
        import_object("dep_probe_extra.value")
