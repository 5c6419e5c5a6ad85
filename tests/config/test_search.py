"""ParameterGridSearch: experiments, names, grid-file round trips, summary and manifest."""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime

import pytest
import yaml

from model_training_framework.config.grid import ParameterGrid
from model_training_framework.config.naming import NamingStrategy
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.experiment.search import (
    ParameterGridSearch,
    describe_experiments,
)

BASE = {
    "experiment_name": "base",
    "model": {"hidden": 16, "act": "relu"},
    "optimizer": {"lr": 0.001},
}


def _lr_grid(name="lr") -> ParameterGrid:
    return (
        ParameterGrid(name)
        .add_parameter("optimizer.lr", [0.001, 0.01])
        .add_parameter("model.hidden", [32, 64])
    )


def test_generate_experiments_returns_named_validated_configs():
    search = ParameterGridSearch(BASE).add_grid(_lr_grid())
    experiments = search.generate_experiments()
    assert search.get_total_experiments() == len(experiments) == 4
    assert all(isinstance(e, ExperimentConfig) for e in experiments)
    by_name = {e.experiment_name: e for e in experiments}
    chosen = by_name["base_hid-64_lr-0.01"]
    assert chosen.optimizer.lr == 0.01 and chosen.model == {"hidden": 64, "act": "relu"}


def test_base_config_may_be_an_experiment_config():
    base = ExperimentConfig.from_dict({"experiment_name": "exp", "training": {"max_epochs": 3}})
    grid = ParameterGrid("g").add_parameter("performance.gradient_accumulation_steps", [1, 4])
    experiments = ParameterGridSearch(base).add_grid(grid).generate_experiments()
    assert [e.performance.gradient_accumulation_steps for e in experiments] == [1, 4]
    assert all(e.training.max_epochs == 3 for e in experiments)
    assert base.experiment_name == "exp"  # the base is not changed


def test_total_is_the_sum_over_grids_and_conditionals_see_the_base():
    conditional = ParameterGrid("cond").add_parameter("seed", [1, 2])
    conditional.add_conditional_parameter(
        "custom_params.slope", [0.1, 0.2], when={"model.act": "relu"}
    )
    search = ParameterGridSearch(BASE).add_grid(_lr_grid()).add_grid(conditional)
    assert search.get_total_experiments() == 4 + 4 == len(search.generate_experiments())


def test_the_same_values_from_two_grids_are_a_clash_not_an_overwrite():
    search = ParameterGridSearch(BASE).add_grid(_lr_grid("a")).add_grid(_lr_grid("b"))
    with pytest.raises(ConfigError, match="both named"):
        search.generate_experiments()


def test_grid_names_must_be_unique_in_a_search():
    search = ParameterGridSearch(BASE).add_grid(_lr_grid("a"))
    with pytest.raises(ConfigError, match="already"):
        search.add_grid(_lr_grid("a"))


def test_invalid_swept_value_names_the_experiment():
    grid = ParameterGrid("g").add_parameter("training.max_epochs", [1, -5])
    with pytest.raises(ConfigError, match="max_epochs"):
        ParameterGridSearch(BASE).add_grid(grid).generate_experiments()
    with pytest.raises(ConfigError, match="base_ep--5"):
        ParameterGridSearch(BASE).add_grid(grid).generate_experiments()


def test_unknown_swept_key_is_an_error():
    grid = ParameterGrid("g").add_parameter("optimizer.learning_rat", [0.1])
    with pytest.raises(ConfigError):
        ParameterGridSearch(BASE).add_grid(grid).generate_experiments()


def test_names_are_stable_across_searches_and_extended_value_lists():
    first = dict(describe_experiments(ParameterGridSearch(BASE).add_grid(_lr_grid())))
    bigger = ParameterGrid("lr").add_parameter("optimizer.lr", [0.001, 0.01, 0.1])
    bigger.add_parameter("model.hidden", [32, 64])
    second = dict(describe_experiments(ParameterGridSearch(BASE).add_grid(bigger)))
    assert set(first) < set(second)
    assert all(second[name] == values for name, values in first.items())


def test_every_name_is_safe_and_equals_the_run_directory_name():
    grid = ParameterGrid("g").add_parameter(
        "custom_params.tag", ["a/b", "a b", "ä", "True", "true"]
    )
    experiments = ParameterGridSearch(BASE).add_grid(grid).generate_experiments()
    names = [e.experiment_name for e in experiments]
    assert len(set(names)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,120}", n) for n in names)


def test_computed_values_are_in_configs_but_not_in_names():
    grid = ParameterGrid("g").add_parameter("data.batch_size", [32, 64])
    grid.add_computed_parameter("optimizer.lr", lambda v: 0.001 * v["data.batch_size"] / 32)
    experiments = ParameterGridSearch(BASE).add_grid(grid).generate_experiments()
    assert [e.experiment_name for e in experiments] == ["base_bs-32", "base_bs-64"]
    assert [e.optimizer.lr for e in experiments] == [0.001, 0.002]


@pytest.mark.parametrize("strategy", ["hash_based", NamingStrategy.TIMESTAMP_BASED])
def test_other_naming_strategies(strategy):
    clock = lambda: datetime(2030, 1, 1, 0, 0, 0)  # noqa: E731
    search = ParameterGridSearch(BASE, clock=clock).add_grid(_lr_grid())
    names = [e.experiment_name for e in search.set_naming_strategy(strategy).generate_experiments()]
    assert len(set(names)) == 4
    assert names == [n for n, _ in describe_experiments(search)]  # one timestamp per search


def test_grid_config_round_trip_yaml_and_json(tmp_path):
    grid = (
        _lr_grid()
        .add_linked_parameters(
            {"training.max_epochs": [1, 2], "optimizer.weight_decay": [0.0, 0.1]}
        )
        .add_parameter_distribution(
            "custom_params.dropout", "loguniform", 2, seed=5, low=1e-3, high=1e-1
        )
        .add_conditional_parameter("custom_params.warm", [True], when={"optimizer.lr": 0.01})
        .exclude_combinations([{"optimizer.lr": 0.001, "model.hidden": 64}])
    )
    search = ParameterGridSearch(BASE).add_grid(grid).set_naming_strategy("hash_based")
    for filename in ("grid.yaml", "grid.json"):
        path = search.save_grid_config(tmp_path / filename)
        loaded = ParameterGridSearch.load_grid_config(path)
        assert loaded.naming_strategy is NamingStrategy.HASH_BASED
        assert sorted(describe_experiments(loaded)) == sorted(describe_experiments(search))
        assert loaded.base_config == search.base_config


def test_saving_a_grid_with_callables_names_them_and_writes_nothing(tmp_path):
    grid = _lr_grid().add_constraint(lambda v: True)
    search = ParameterGridSearch(BASE).add_grid(grid)
    with pytest.raises(ConfigError, match="constraint #0"):
        search.save_grid_config(tmp_path / "grid.yaml")
    assert not (tmp_path / "grid.yaml").exists()


def test_saved_grid_file_is_plain_yaml(tmp_path):
    path = ParameterGridSearch(BASE).add_grid(_lr_grid()).save_grid_config(tmp_path / "g.yaml")
    assert "!!python" not in path.read_text()
    assert yaml.safe_load(path.read_text())["grids"][0]["name"] == "lr"


def test_summary_lists_counts_and_every_experiment(tmp_path):
    search = ParameterGridSearch(BASE).add_grid(_lr_grid())
    path = search.save_summary(tmp_path / "summary.json")
    summary = json.loads(path.read_text())
    assert summary["total_experiments"] == 4
    assert summary["grids"][0]["num_experiments"] == 4
    assert summary["grids"][0]["swept_keys"] == ["optimizer.lr", "model.hidden"]
    assert {e["name"] for e in summary["experiments"]} == {
        n for n, _ in describe_experiments(search)
    }


def test_manifest_maps_each_name_to_its_full_validated_config(tmp_path):
    search = ParameterGridSearch(BASE).add_grid(_lr_grid())
    path = search.write_manifest(tmp_path / "sweep")
    assert path == tmp_path / "sweep" / "manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert manifest["num_experiments"] == 4
    for name, entry in manifest["experiments"].items():
        config = ExperimentConfig.from_dict(entry["config"])
        assert config.experiment_name == name
        assert config.optimizer.lr == entry["parameters"]["optimizer.lr"]
        assert entry["config"]["checkpoint"]["root_dir"]  # defaults filled in: the full config


def test_another_sweep_into_the_same_folder_with_the_same_names_is_a_clash(tmp_path):
    # The second sweep's experiment directories (config.yaml) would replace the first's, and
    # its runs would resume the first sweep's checkpoints as their own.
    first = ParameterGridSearch(BASE).add_grid(_lr_grid("lr"))
    path = first.write_manifest(tmp_path)
    before = path.read_bytes()
    other_base = {**BASE, "model": {"hidden": 16, "act": "gelu"}}
    second = ParameterGridSearch(other_base).add_grid(_lr_grid("lr_gelu"))

    with pytest.raises(ConfigError, match=r"base_hid-32_lr-0\.001.*grid 'lr'.*experiment_name"):
        second.write_manifest(tmp_path)

    assert path.read_bytes() == before
    first.write_manifest(tmp_path)  # rerunning the same sweep is no clash


def test_a_second_sweep_into_the_same_folder_keeps_the_first_in_the_manifest(tmp_path):
    ParameterGridSearch(BASE).add_grid(_lr_grid("lr")).write_manifest(tmp_path)
    seeds = ParameterGrid("seeds").add_parameter("seed", [1, 2])
    path = ParameterGridSearch(BASE).add_grid(seeds).write_manifest(tmp_path)

    manifest = yaml.safe_load(path.read_text())
    assert manifest["num_experiments"] == 6
    assert {entry["grid"] for entry in manifest["experiments"].values()} == {"lr", "seeds"}


def test_manifest_is_not_written_when_an_experiment_is_invalid(tmp_path):
    grid = ParameterGrid("g").add_parameter("training.max_epochs", [1, 0])
    with pytest.raises(ConfigError):
        ParameterGridSearch(BASE).add_grid(grid).write_manifest(tmp_path)
    assert not (tmp_path / "manifest.yaml").exists()


def test_base_config_must_be_a_mapping_or_experiment_config():
    with pytest.raises(ConfigError, match="ExperimentConfig or a mapping"):
        ParameterGridSearch(["not", "a", "config"])  # type: ignore[arg-type]


def test_sweeping_the_experiment_name_itself_is_refused():
    grid = ParameterGrid("g").add_parameter("experiment_name", ["a", "b"])
    with pytest.raises(ConfigError, match="sweeps 'experiment_name'"):
        ParameterGridSearch(BASE).add_grid(grid).generate_experiments()


def test_base_without_experiment_name_uses_the_default_base():
    grid = ParameterGrid("g").add_parameter("seed", [1])
    (experiment,) = ParameterGridSearch({}).add_grid(grid).generate_experiments()
    assert experiment.experiment_name == "experiment_seed-1"


def test_a_choice_value_drawn_twice_is_a_name_clash_in_the_sweep():
    grid = ParameterGrid("g").add_parameter_distribution(
        "model.act", "choice", 5, choices=["relu", "gelu"]
    )
    search = ParameterGridSearch(BASE).add_grid(grid)
    with pytest.raises(ConfigError, match="both named"):
        search.generate_experiments()


@pytest.mark.parametrize(
    ("base_optimizer", "swept_key"),
    [
        ({"learning_rate": 0.001}, "optimizer.lr"),  # a reference-era base, the new key swept
        ({"lr": 0.001}, "optimizer.learning_rate"),  # and the other way round
    ],
)
def test_old_and_new_spellings_of_a_swept_key_do_not_conflict(base_optimizer, swept_key):
    # Both used to fail: "optimizer.lr: conflicts with the deprecated key
    # 'optimizer.learning_rate' (0.01 vs 0.001); remove 'optimizer.learning_rate' ...".
    base = {"experiment_name": "base", "optimizer": base_optimizer}
    grid = ParameterGrid("g").add_parameter(swept_key, [0.01, 0.1])
    with pytest.warns(DeprecationWarning, match=r"'optimizer\.learning_rate'.*'optimizer\.lr'"):
        experiments = ParameterGridSearch(base).add_grid(grid).generate_experiments()
    assert sorted(e.optimizer.lr for e in experiments) == [0.01, 0.1]


def test_a_swept_old_key_that_becomes_two_keys_sets_both():
    base = {"experiment_name": "base", "performance": {"use_amp": False}}
    grid = ParameterGrid("g").add_parameter("performance.mixed_precision", ["bf16-mixed", "32"])
    with pytest.warns(DeprecationWarning):
        experiments = ParameterGridSearch(base).add_grid(grid).generate_experiments()
    assert sorted((e.performance.use_amp, e.performance.amp_dtype) for e in experiments) == [
        (False, "bfloat16"),
        (True, "bfloat16"),
    ]


@pytest.mark.parametrize(
    ("old_key", "new_key", "old_values", "new_values"),
    [
        ("optimizer.learning_rate", "optimizer.lr", [0.1, 0.01], [0.2]),
        ("training.epochs", "training.max_epochs", [1], [2, 3]),
        ("performance.mixed_precision", "performance.use_amp", ["16-mixed"], [False]),
    ],
)
def test_a_grid_sweeping_an_old_key_and_its_new_key_is_an_error(
    old_key, new_key, old_values, new_values
):
    # Used to keep whichever value came last: learning_rate [0.1, 0.01] x lr [0.2] gave two
    # experiments, named after learning_rate 0.1 and 0.01, that both trained with lr 0.2.
    grid = ParameterGrid("g").add_parameter(old_key, old_values).add_parameter(new_key, new_values)
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ConfigError, match="conflicts with the deprecated key"),
    ):
        ParameterGridSearch(BASE).add_grid(grid).generate_experiments()


def test_a_grid_giving_an_old_key_and_its_new_key_one_value_is_accepted():
    grid = ParameterGrid("g").add_parameter("optimizer.learning_rate", [0.1])
    grid.add_parameter("optimizer.lr", [0.1])
    with pytest.warns(DeprecationWarning):
        (experiment,) = ParameterGridSearch(BASE).add_grid(grid).generate_experiments()
    assert experiment.optimizer.lr == 0.1


@pytest.mark.parametrize(
    ("base", "when"),
    [
        ({"optimizer": {"type": "sgd"}}, {"optimizer.type": "sgd"}),  # a reference-era grid
        ({"optimizer": {"name": "sgd"}}, {"optimizer.type": "sgd"}),
        ({"training": {"epochs": 2}}, {"training.epochs": 2}),
        ({"multi": {"burst_size": 2}}, {"multi.burst_size": 2}),
    ],
)
def test_conditions_on_an_old_key_see_the_base_configs_value(base, when):
    # The base config's old keys are renamed before expansion, so a condition written with the
    # old key found nothing and the conditional value was silently never applied.
    grid = ParameterGrid("g").add_parameter("seed", [1, 2])
    grid.add_conditional_parameter("optimizer.weight_decay", [0.1], when=when)
    grid.exclude_combinations([{**when, "seed": 2}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        search = ParameterGridSearch({"experiment_name": "b", **base}).add_grid(grid)
        experiments = search.generate_experiments()
        assert search.get_total_experiments() == 1
    assert [(e.seed, e.optimizer.weight_decay) for e in experiments] == [(1, 0.1)]


def test_a_swept_key_inside_a_renamed_section_lands_in_the_new_section():
    base = {"experiment_name": "base", "multi": {"dataloader_names": ["a", "b"]}}
    grid = ParameterGrid("g").add_parameter("multi.sampling_strategy", ["sequential", "weighted"])
    grid.add_parameter("multi.dataloader_weights", [[1, 2]])
    with pytest.warns(DeprecationWarning, match="'multi'.*'train_loader_config'"):
        experiments = ParameterGridSearch(base).add_grid(grid).generate_experiments()
    loaders = [e.train_loader_config for e in experiments]
    assert sorted(c.sampling_strategy.value for c in loaders) == ["sequential", "weighted"]
    assert all(c.dataloader_names == ["a", "b"] for c in loaders)


@pytest.mark.parametrize("grid_name", ["act", "other"])
def test_a_name_differing_only_in_case_from_one_in_the_manifest_is_refused(tmp_path, grid_name):
    # On macOS/Windows act-relu is act-ReLU's directory: a rerun that changed the value's case
    # (same grid), or another grid in the same experiments dir, would resume that run as its own.
    first = ParameterGrid("act").add_parameter("model.act", ["ReLU"])
    ParameterGridSearch(BASE).add_grid(first).write_manifest(tmp_path)
    second = ParameterGrid(grid_name).add_parameter("model.act", ["relu"])
    with pytest.raises(ConfigError, match=r"base_act-relu.*only in case.*base_act-ReLU"):
        ParameterGridSearch(BASE).add_grid(second).write_manifest(tmp_path)


def test_a_kept_experiment_keeps_its_manifest_entry_or_records_its_config_on_disk(tmp_path):
    # mtf sweep leaves an experiment with a queued or running job as it is; its manifest entry
    # must describe what that job runs, not the new config.
    ParameterGridSearch(BASE).add_grid(_lr_grid()).write_manifest(tmp_path)
    first = yaml.safe_load((tmp_path / "manifest.yaml").read_text())["experiments"]
    kept, lost = sorted(first)[:2]
    on_disk = {**first[lost]["config"], "seed": 7}  # what the queued job runs
    (tmp_path / lost).mkdir()
    (tmp_path / lost / "config.yaml").write_text(yaml.safe_dump(on_disk))
    manifest = yaml.safe_load((tmp_path / "manifest.yaml").read_text())
    del manifest["experiments"][lost]
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    changed = {**BASE, "seed": 99}

    path = (
        ParameterGridSearch(changed)
        .add_grid(_lr_grid())
        .write_manifest(tmp_path, keep={kept, lost})
    )

    entries = yaml.safe_load(path.read_text())["experiments"]
    assert entries[kept] == first[kept]
    assert entries[lost]["config"]["seed"] == 7
    assert entries[lost]["parameters"] == first[lost]["parameters"]
    others = set(entries) - {kept, lost}
    assert len(others) == 2 and {entries[n]["config"]["seed"] for n in others} == {99}
