"""ParameterGrid: counts of every feature, merged views, seeded distributions, to/from dict."""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_training_framework.config import grid as grid_module
from model_training_framework.config.grid import (
    ChoiceDistribution,
    ConfigView,
    ParameterGrid,
    get_path,
    merge_parameters,
    set_path,
)
from model_training_framework.errors import ConfigError

BASE = {"optimizer": {"name": "adamw", "lr": 0.001}, "model": {"hidden": 16, "act": "relu"}}


def _all(grid: ParameterGrid, base=None) -> list[dict]:
    combos = list(grid.generate_permutations(base))
    assert grid.get_parameter_count(base) == len(combos)
    return combos


@pytest.mark.parametrize("module", ["grid.py", "naming.py"])
def test_pure_modules_import_only_the_standard_library_and_package_modules(module):
    path = Path(grid_module.__file__).with_name(module)
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "errors", f"{module} imports non-PURE .{node.module}"
    assert not imported & {"torch", "numpy", "subprocess", "yaml", "pydantic"}


def test_plain_parameters_multiply():
    grid = ParameterGrid("g").add_parameter("optimizer.lr", [0.1, 0.01, 0.001])
    grid.add_parameter("model.hidden", [32, 64])
    combos = _all(grid)
    assert len(combos) == 6
    assert {(c["optimizer.lr"], c["model.hidden"]) for c in combos} == {
        (lr, h) for lr in (0.1, 0.01, 0.001) for h in (32, 64)
    }


def test_empty_grid_yields_the_base_once():
    assert _all(ParameterGrid("g")) == [{}]


def test_linked_parameters_vary_together_in_all_three_spellings():
    by_columns = ParameterGrid("a").add_linked_parameters({"x.a": [1, 2], "x.b": [10, 20]})
    by_tuples = ParameterGrid("b").add_linked_parameters(["x.a", "x.b"], [(1, 10), (2, 20)])
    by_rows = ParameterGrid("c").add_linked_parameters(
        [{"x.a": 1, "x.b": 10}, {"x.a": 2, "x.b": 20}]
    )
    expected = [{"x.a": 1, "x.b": 10}, {"x.a": 2, "x.b": 20}]
    assert _all(by_columns) == _all(by_tuples) == _all(by_rows) == expected


def test_several_linked_groups_are_alternatives_multiplied_with_plain_parameters():
    grid = ParameterGrid("g").add_parameter("seed", [0, 1, 2])
    grid.add_linked_parameters({"optimizer.lr": [0.1, 0.01], "training.max_epochs": [1, 2]})
    grid.add_linked_parameters([{"optimizer.name": "sgd", "optimizer.momentum": 0.9}])
    combos = _all(grid)
    assert len(combos) == (2 + 1) * 3
    assert sum("optimizer.momentum" in c for c in combos) == 3


def test_linked_lists_of_unequal_length_are_rejected():
    with pytest.raises(ConfigError, match="equal length"):
        ParameterGrid("g").add_linked_parameters({"a": [1, 2], "b": [1]})


def test_parameter_sets_are_separate_axes():
    grid = ParameterGrid("g").add_parameter_sets([{"model.size": "s"}, {"model.size": "l"}])
    grid.add_parameter_sets([{"optimizer.name": "sgd"}, {"optimizer.name": "adam"}, {"seed": 3}])
    assert len(_all(grid)) == 6


def test_conditional_on_a_swept_value_multiplies_only_matching_combinations():
    grid = ParameterGrid("g").add_parameter("optimizer.name", ["sgd", "adamw"])
    grid.add_parameter("seed", [0, 1])
    grid.add_conditional_parameter(
        "optimizer.momentum", [0.9, 0.99, 0.999], when={"optimizer.name": "sgd"}
    )
    combos = _all(grid)
    assert len(combos) == 2 * 3 + 2
    assert all(("optimizer.momentum" in c) == (c["optimizer.name"] == "sgd") for c in combos)


def test_conditional_sees_base_config_keys():
    grid = ParameterGrid("g").add_parameter("seed", [0, 1])
    grid.add_conditional_parameter("model.dropout", [0.1, 0.2], when={"model.act": "relu"})
    assert len(_all(grid, BASE)) == 4
    assert len(_all(grid, {"model": {"act": "gelu"}})) == 2
    assert len(_all(grid, {})) == 2  # a missing key never matches


def test_swept_value_overrides_base_in_the_condition_view():
    grid = ParameterGrid("g").add_parameter("model.act", ["relu", "gelu"])
    grid.add_conditional_parameter("model.slope", [0.1, 0.2], when={"model.act": "gelu"})
    combos = _all(grid, BASE)
    assert len(combos) == 3
    assert {c["model.act"] for c in combos if "model.slope" in c} == {"gelu"}


def test_conditional_with_when_func_and_chained_conditionals():
    grid = ParameterGrid("g").add_parameter("optimizer.lr", [0.1, 0.001])
    grid.add_conditional_parameter(
        "warmup", [True, False], when_func=lambda v: v["optimizer.lr"] > 0.01
    )
    grid.add_conditional_parameter("warmup_steps", [10, 100], when={"warmup": True})
    assert len(_all(grid)) == 1 + 1 + 2


def test_conditional_needs_exactly_one_condition():
    with pytest.raises(ConfigError, match="exactly one"):
        ParameterGrid("g").add_conditional_parameter("a", [1])
    with pytest.raises(ConfigError, match="exactly one"):
        ParameterGrid("g").add_conditional_parameter("a", [1], when={"b": 1}, when_func=bool)


def test_two_applicable_conditionals_for_one_key_are_an_error():
    grid = ParameterGrid("g").add_parameter("a", [1])
    grid.add_conditional_parameter("c", [1], when={"a": 1})
    grid.add_conditional_parameter("c", [2], when_func=lambda v: True)
    with pytest.raises(ConfigError, match="two conditional parameters"):
        grid.get_parameter_count()


def test_exclusive_conditionals_may_share_a_key():
    grid = ParameterGrid("g").add_parameter("optimizer.name", ["sgd", "adam"])
    grid.add_conditional_parameter("optimizer.beta", [0.9], when={"optimizer.name": "sgd"})
    grid.add_conditional_parameter("optimizer.beta", [0.8, 0.7], when={"optimizer.name": "adam"})
    assert sorted(c["optimizer.beta"] for c in _all(grid)) == [0.7, 0.8, 0.9]


def test_computed_parameter_sees_merged_view_and_is_not_a_swept_key():
    grid = ParameterGrid("g").add_parameter("data.batch_size", [32, 64])
    grid.add_computed_parameter(
        "optimizer.lr", lambda v: v["optimizer.lr"] * v["data.batch_size"] / 32
    )
    combos = _all(grid, BASE)
    assert [c["optimizer.lr"] for c in combos] == [0.001, 0.002]
    assert grid.swept_keys() == ["data.batch_size"]
    assert grid.computed_keys() == ["optimizer.lr"]


def test_constraint_filters_and_count_matches():
    grid = ParameterGrid("g").add_parameter("a", [1, 2, 3]).add_parameter("b", [1, 2, 3])
    grid.add_constraint(lambda v: v["a"] < v["b"])
    assert {(c["a"], c["b"]) for c in _all(grid)} == {(1, 2), (1, 3), (2, 3)}


def test_constraint_sees_base_config():
    grid = ParameterGrid("g").add_parameter("model.hidden", [8, 16, 32])
    grid.add_constraint(lambda v: v["model.hidden"] >= v["model"]["act"].__len__() * 4)
    assert [c["model.hidden"] for c in _all(grid, BASE)] == [16, 32]


def test_exclusions_by_mapping_and_callable():
    grid = ParameterGrid("g").add_parameter("a", [1, 2]).add_parameter("b", ["x", "y"])
    grid.exclude_combinations([{"a": 1, "b": "x"}, lambda v: v["a"] == 2 and v["b"] == "y"])
    assert {(c["a"], c["b"]) for c in _all(grid)} == {(1, "y"), (2, "x")}


def test_exclusion_does_not_confuse_true_with_one():
    grid = ParameterGrid("g").add_parameter("a", [True, 1])
    grid.exclude_combinations([{"a": 1}])
    assert [c["a"] for c in _all(grid)] == [True]


def test_every_feature_combined_counts_consistently():
    grid = (
        ParameterGrid("all")
        .add_parameter("optimizer.name", ["sgd", "adamw"])
        .add_linked_parameters({"optimizer.lr": [0.1, 0.01], "training.max_epochs": [1, 2]})
        .add_linked_parameters([{"optimizer.lr": 0.5, "training.max_epochs": 9}])
        .add_parameter_sets([{"model.size": "s"}, {"model.size": "m"}])
        .add_parameter_distribution("model.dropout", "uniform", 2, seed=1, low=0.0, high=0.5)
        .add_conditional_parameter(
            "optimizer.momentum", [0.9, 0.95], when={"optimizer.name": "sgd"}
        )
        .add_conditional_parameter("model.norm", ["ln", "bn"], when={"model.act": "relu"})
        .add_computed_parameter("custom_params.tag", lambda v: f"{v['model.size']}")
        .add_constraint(lambda v: not (v["model.size"] == "m" and v["optimizer.lr"] == 0.5))
        .exclude_combinations([{"optimizer.name": "adamw", "training.max_epochs": 2}])
    )
    combos = _all(grid, BASE)
    per_core = {"sgd": 2 * 2, "adamw": 2}  # momentum x norm (base act is relu), norm only
    expected = 0
    for name in ("sgd", "adamw"):
        for lr, epochs in ((0.1, 1), (0.01, 2), (0.5, 9)):
            for size in ("s", "m"):
                if size == "m" and lr == 0.5:
                    continue
                if name == "adamw" and epochs == 2:
                    continue
                expected += 2 * per_core[name]  # x 2 dropout samples
    assert len(combos) == expected
    assert all(c["custom_params.tag"] == c["model.size"] for c in combos)


def test_a_key_may_be_swept_in_one_place_only():
    grid = ParameterGrid("g").add_parameter("model.hidden", [1])
    with pytest.raises(ConfigError, match="overlaps"):
        grid.add_parameter("model.hidden", [2])
    with pytest.raises(ConfigError, match="overlaps"):
        grid.add_parameter("model", [{}])
    with pytest.raises(ConfigError, match="overlaps"):
        grid.add_linked_parameters({"model.hidden.x": [1]})
    with pytest.raises(ConfigError, match="overlaps"):
        grid.add_computed_parameter("model.hidden", lambda v: 1)


@pytest.mark.parametrize("bad_key", ["", "a..b", ".a", "a.", 3])
def test_keys_must_be_dotted_paths(bad_key):
    with pytest.raises(ConfigError, match="dotted config path"):
        ParameterGrid("g").add_parameter(bad_key, [1])


@pytest.mark.parametrize("values", [[], "abc", 3])
def test_values_must_be_a_non_empty_list(values):
    with pytest.raises(ConfigError, match="values for"):
        ParameterGrid("g").add_parameter("a", values)


def test_generated_values_are_copies():
    shared = [1, 2]
    grid = ParameterGrid("g").add_parameter("model.layers", [shared])
    first = next(grid.generate_permutations())
    first["model.layers"].append(3)
    assert next(grid.generate_permutations())["model.layers"] == [1, 2]
    assert shared == [1, 2]


# ------------------------------------------------------------------------- distributions
@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("uniform", {"low": -1.0, "high": 2.0}),
        ("loguniform", {"low": 1e-5, "high": 1e-1}),
        ("normal", {"mean": 0.0, "std": 1.0}),
        ("choice", {"choices": list(range(100)), "weights": [1.0] * 100}),
    ],
)
def test_distributions_reproduce_with_the_same_seed_and_differ_with_another(kind, params):
    def draw(seed):
        grid = ParameterGrid("g").add_parameter_distribution("x.y", kind, 3, seed=seed, **params)
        return [c["x.y"] for c in _all(grid)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    assert len(draw(7)) == 3


def test_uniform_and_loguniform_samples_lie_in_range():
    grid = ParameterGrid("g").add_parameter_distribution(
        "a", "uniform", 50, seed=0, low=2.0, high=3.0
    )
    grid.add_parameter_distribution("b", "loguniform", 2, seed=0, low=1e-4, high=1e-2)
    for combo in _all(grid):
        assert 2.0 <= combo["a"] < 3.0
        assert 1e-4 <= combo["b"] <= 1e-2


def test_keys_with_the_same_seed_get_independent_draws():
    grid = ParameterGrid("g").add_parameter_distribution(
        "a", "uniform", 1, seed=0, low=0.0, high=1.0
    )
    grid.add_parameter_distribution("b", "uniform", 1, seed=0, low=0.0, high=1.0)
    (combo,) = _all(grid)
    assert combo["a"] != combo["b"]


def test_choice_weights_bias_the_first_draw():
    dist = ChoiceDistribution(("rare", "common"), (1.0, 99.0))
    first_draws = [dist.sample(random.Random(seed), 1)[0] for seed in range(200)]
    assert first_draws.count("common") > 150


def test_choice_draws_with_replacement_so_n_samples_may_exceed_the_choices():
    grid = ParameterGrid("g").add_parameter_distribution("a", "choice", 12, choices=["x", "y"])
    drawn = [c["a"] for c in _all(grid)]
    assert len(drawn) == 12
    assert set(drawn) == {"x", "y"}  # 12 draws from 2 choices: both appear, with repeats


def test_choice_draws_are_independent_of_earlier_draws():
    dist = ChoiceDistribution(("a", "b", "c"))
    draws = dist.sample(random.Random(3), 3000)
    # without replacement the first 3 draws would always be a permutation of the choices
    firsts = [tuple(dist.sample(random.Random(seed), 3)) for seed in range(50)]
    assert any(len(set(first)) < 3 for first in firsts)
    assert all(900 < draws.count(choice) < 1100 for choice in "abc")


def test_choice_weights_hold_over_many_draws():
    draws = ChoiceDistribution(("rare", "common"), (1.0, 3.0)).sample(random.Random(0), 4000)
    assert 2800 < draws.count("common") < 3200


def test_add_nested_parameter_is_add_parameter_for_a_dotted_or_split_path():
    by_string = ParameterGrid("g").add_nested_parameter("model.encoder.dim", [8, 16])
    by_parts = ParameterGrid("g").add_nested_parameter(["model", "encoder", "dim"], [8, 16])
    expected = [{"model.encoder.dim": 8}, {"model.encoder.dim": 16}]
    assert _all(by_string) == _all(by_parts) == expected


@pytest.mark.parametrize("path", [[], ["model", ""], ["model", 3], 42])
def test_add_nested_parameter_refuses_a_bad_path(path):
    with pytest.raises(ConfigError, match="key_path"):
        ParameterGrid("g").add_nested_parameter(path, [1])


def test_get_parameter_names_lists_swept_then_computed_keys():
    grid = (
        ParameterGrid("g")
        .add_parameter("optimizer.lr", [0.1, 0.01])
        .add_linked_parameters({"model.depth": [2, 4], "model.width": [64, 32]})
        .add_conditional_parameter("optimizer.momentum", [0.9], when={"optimizer.lr": 0.1})
        .add_computed_parameter("model.params", lambda view: view["model.depth"])
    )
    assert grid.get_parameter_names() == [
        "optimizer.lr",
        "model.depth",
        "model.width",
        "optimizer.momentum",
        "model.params",
    ]
    assert ParameterGrid("empty").get_parameter_names() == []


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("uniform", {"low": 1.0, "high": 1.0}, "low < high"),
        ("loguniform", {"low": 0.0, "high": 1.0}, "0 < low"),
        ("normal", {"mean": 0.0, "std": 0.0}, "std > 0"),
        ("normal", {"mean": math.nan, "std": 1.0}, "finite"),
        ("choice", {"choices": []}, "non-empty"),
        ("choice", {"choices": [1, 2], "weights": [1.0]}, "one positive weight"),
        ("choice", {"choices": [1, 2], "weights": [1.0, -1.0]}, "one positive weight"),
        ("uniform", {"lo": 0.0, "high": 1.0}, "take low, high"),
        ("gamma", {}, "unknown"),
    ],
)
def test_bad_distribution_parameters_are_clear_errors(kind, params, message):
    with pytest.raises(ConfigError, match=message):
        ParameterGrid("g").add_parameter_distribution("a", kind, 1, **params)


def test_n_samples_must_be_positive():
    with pytest.raises(ConfigError, match="n_samples"):
        ParameterGrid("g").add_parameter_distribution("a", "uniform", 0, low=0.0, high=1.0)


# ------------------------------------------------------------------------- views and paths
def test_config_view_reads_dotted_and_nested_keys_without_changing_the_base():
    view = ConfigView(BASE, {"optimizer.lr": 0.5, "model.extra.depth": 3})
    assert view["optimizer.lr"] == 0.5
    assert view["optimizer"]["name"] == "adamw"
    assert view["model.extra.depth"] == 3
    assert view.get("missing.key", "d") == "d"
    assert "model.act" in view and "model.nope" not in view
    assert BASE["optimizer"]["lr"] == 0.001 and "extra" not in BASE["model"]


def test_set_path_refuses_to_descend_into_a_value():
    config = {"model": 3}
    with pytest.raises(ConfigError, match="not a section"):
        set_path(config, "model.hidden", 1)


def test_merge_parameters_deep_copies():
    merged = merge_parameters(BASE, {"model.hidden": 99})
    merged["optimizer"]["lr"] = 5
    assert get_path(merged, "model.hidden") == 99
    assert BASE["optimizer"]["lr"] == 0.001


# ------------------------------------------------------------------------- to_dict / from_dict
def test_to_dict_from_dict_round_trip_gives_the_same_combinations():
    grid = (
        ParameterGrid("g", "desc")
        .add_parameter_distribution("model.dropout", "normal", 2, seed=3, mean=0.1, std=0.01)
        .add_parameter("optimizer.lr", [0.1, 0.01])
        .add_linked_parameters({"a.x": [1, 2], "a.y": ["p", "q"]})
        .add_parameter_sets([{"s.k": 1}, {"s.k": 2}])
        .add_parameter_distribution(
            "c.w", "choice", 2, seed=0, choices=["u", "v", "w"], weights=[1, 2, 3]
        )
        .add_conditional_parameter("opt.m", [0.9], when={"optimizer.lr": 0.1})
        .exclude_combinations([{"a.x": 2, "s.k": 2}])
    )
    copy = ParameterGrid.from_dict(grid.to_dict())
    key = lambda c: sorted(c.items(), key=str)  # noqa: E731
    assert sorted(map(key, _all(copy)), key=str) == sorted(map(key, _all(grid)), key=str)
    assert copy.description == "desc"


def test_to_dict_names_every_callable_instead_of_dropping_it():
    grid = ParameterGrid("g").add_parameter("a", [1])
    grid.add_computed_parameter("b", lambda v: 1).add_constraint(lambda v: True)
    grid.add_conditional_parameter("c", [1], when_func=lambda v: True)
    with pytest.raises(ConfigError) as info:
        grid.to_dict()
    for part in ("computed parameter 'b'", "constraint #0", "conditional parameter 'c'"):
        assert part in str(info.value)


def test_from_dict_rejects_unknown_sections():
    with pytest.raises(ConfigError, match="unknown"):
        ParameterGrid.from_dict({"name": "g", "paramaters": {}})


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    linked=st.lists(st.integers(1, 3), max_size=3),
    threshold=st.integers(0, 4),
)
def test_count_always_equals_number_generated(sizes, linked, threshold):
    grid = ParameterGrid("g")
    for axis, size in enumerate(sizes):
        grid.add_parameter(f"p.k{axis}", list(range(size)))
    for group, size in enumerate(linked):
        grid.add_linked_parameters({"l.a": list(range(size)), f"l.b{group}": list(range(size))})
    grid.add_conditional_parameter("c.x", [1, 2], when={"p.k0": 0})
    grid.add_constraint(lambda v: v.get("p.k1", 0) < threshold)
    combos = list(grid.generate_permutations())
    assert grid.get_parameter_count() == len(combos)
    expected_core = math.prod(sizes) * (sum(linked) if linked else 1)
    assert len(combos) <= 2 * expected_core
