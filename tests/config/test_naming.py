"""Experiment names: safe characters, length cap, lossless values, stability and uniqueness."""

from __future__ import annotations

import math
import re
from datetime import datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model_training_framework.config.naming import (
    MAX_NAME_LENGTH,
    NamingStrategy,
    abbreviate_keys,
    canonical_text,
    encode_value,
    make_experiment_name,
    name_experiments,
)
from model_training_framework.errors import ConfigError

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
ADVERSARIAL_VALUES = [
    10.0, 100.0, 1.0, 10, 100, 0, 0.0, -0.0, 1, True, False, "True", "true", "1", "10.0",
    None, "None", "none", 1e-4, 0.0001, 1e-5, 1e16, 10**16, -1, -1.0, -1e-4, math.inf, -math.inf,
    "inf", "nan", "a/b", "a b", "a_b", "a-b", "a.b", "ä", "日本", "", " ", "_", ".", "-", "..x",
    ".a", "a-2f.b", "x" * 200, [1, 2], (1, 2), [1.0, 2], {"a": 1}, {"a": 1.0}, ["a", "b"], "[1, 2]",
]  # fmt: skip


def _distinct(values, identity=canonical_text):
    seen, result = set(), []
    for value in values:
        text = identity(value)
        if text not in seen:
            seen.add(text)
            result.append(value)
    return result


def test_readable_name_from_the_issue_example():
    name = make_experiment_name("base", {"optimizer.lr": 0.001, "data.batch_size": 32})
    assert name == "base_bs-32_lr-0.001"


def test_names_do_not_depend_on_parameter_order():
    forward = make_experiment_name("b", {"optimizer.lr": 0.1, "model.hidden": 3})
    backward = make_experiment_name("b", {"model.hidden": 3, "optimizer.lr": 0.1})
    assert forward == backward


@pytest.mark.parametrize("strategy", [NamingStrategy.PARAMETER_BASED, NamingStrategy.HASH_BASED])
def test_every_adversarial_value_gets_a_distinct_safe_name(strategy):
    # values whose names differ only in case (True / "True") are a clash: see the test below
    values = _distinct(_distinct(ADVERSARIAL_VALUES), lambda v: encode_value(v).lower())
    names = name_experiments("base", [{"model.v": v} for v in values], strategy)
    assert len(set(names)) == len(values)
    for name in names:
        assert SAFE.match(name) and len(name) <= MAX_NAME_LENGTH


def test_encoded_values_are_pairwise_distinct_and_free_of_separator():
    values = _distinct(ADVERSARIAL_VALUES)
    encoded = [encode_value(v) for v in values]
    assert len(set(encoded)) == len(values)
    assert all("_" not in text and SAFE.match(text) for text in encoded if text)


@pytest.mark.parametrize(
    ("first", "second"),
    [(10.0, 100.0), (0.0, 0), (True, "True"), (1, True), (1e-4, 1e-5), (-1, 1), ("a/b", "a b"),
     ("None", None), ("1", 1), (1.0, 1)],
)  # fmt: skip
def test_values_that_look_alike_give_different_names(first, second):
    assert make_experiment_name("b", {"k": first}) != make_experiment_name("b", {"k": second})


def test_numbers_stay_readable():
    assert encode_value(0.001) == "0.001"
    assert encode_value(1e-4) == "0.0001"
    assert encode_value(-3) == "-3"
    assert encode_value(1e16) == "1e16"
    assert encode_value("adamw") == "adamw"


def test_long_names_are_cut_to_120_with_a_hash_of_the_full_assignment():
    long_value = "x" * 300
    first = make_experiment_name("base", {"model.v": long_value + "a"})
    second = make_experiment_name("base", {"model.v": long_value + "b"})
    assert len(first) == len(second) == MAX_NAME_LENGTH
    assert first != second
    assert first[:100] == second[:100]


def test_very_long_base_name_is_cut_for_every_strategy():
    base = "b" * 500
    clock_time = datetime(2024, 1, 2, 3, 4, 5)
    for strategy in NamingStrategy:
        name = make_experiment_name(base, {"a": 1}, strategy, timestamp=clock_time)
        assert len(name) <= MAX_NAME_LENGTH and SAFE.match(name)


def test_unsafe_base_name_is_escaped():
    name = make_experiment_name("my run/1", {})
    assert SAFE.match(name) and name != make_experiment_name("my run.1", {})


def test_same_values_always_give_the_same_name():
    values = {"optimizer.lr": 0.01, "model.act": "gelu"}
    for strategy in (NamingStrategy.PARAMETER_BASED, NamingStrategy.HASH_BASED):
        assert make_experiment_name("b", values, strategy) == make_experiment_name(
            "b", dict(values), strategy
        )


def test_hash_based_name_is_base_plus_twelve_hex_digits():
    name = make_experiment_name("base", {"a": 1}, "hash_based")
    assert re.fullmatch(r"base_[0-9a-f]{12}", name)
    assert name != make_experiment_name("base", {"a": 1.0}, "HASH_BASED")


def test_timestamp_names_use_the_injected_clock_and_a_counter():
    names = name_experiments(
        "base",
        [{"a": 1}, {"a": 1}],
        NamingStrategy.TIMESTAMP_BASED,
        clock=lambda: datetime(2024, 5, 6, 7, 8, 9),
    )
    assert names == ["base_20240506-070809_0000", "base_20240506-070809_0001"]


def test_same_values_twice_in_one_sweep_is_an_error():
    with pytest.raises(ConfigError, match="both named"):
        name_experiments("b", [{"a": 1}, {"a": 1}])


@pytest.mark.parametrize(
    ("first", "second"),
    [(True, "True"), (None, "None"), ("Adam", "adam"), ("ReLU", "relu"), (False, "FALSE")],
)
def test_names_that_differ_only_in_case_are_a_clash(first, second):
    # base_k-true and base_k-True are one directory on a case-insensitive filesystem (macOS,
    # Windows): the second experiment would resume or overwrite the first one's run.
    with pytest.raises(ConfigError, match="only in case"):
        name_experiments("base", [{"model.k": first}, {"model.k": second}])


def test_keys_that_differ_only_in_case_are_a_clash_when_their_names_do():
    with pytest.raises(ConfigError, match="only in case"):
        name_experiments("base", [{"model.LR": 1}, {"model.lr": 1}])


def test_abbreviations_are_unique_and_use_known_short_forms():
    shorts = abbreviate_keys(
        ["optimizer.lr", "scheduler.lr", "data.batch_size", "model.hidden_size", "model.num_heads"]
    )
    assert shorts["data.batch_size"] == "bs"
    assert shorts["model.num_heads"] == "nh"
    assert shorts["optimizer.lr"] == "optimizer.lr" and shorts["scheduler.lr"] == "scheduler.lr"
    assert len(set(shorts.values())) == len(shorts)


def test_keys_with_identical_abbreviations_at_every_level_fall_back_to_the_whole_key():
    shorts = abbreviate_keys(["a-b", "ab", "a_b", "a.b", "x.a.b"])
    assert len(set(shorts.values())) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9.]+", short) for short in shorts.values())


def test_keys_that_only_clash_across_assignments_still_give_distinct_names():
    names = name_experiments("b", [{"optimizer.lr": 0.1}, {"scheduler.lr": 0.1}])
    assert names[0] != names[1]


def test_unsupported_value_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="plain values"):
        make_experiment_name("b", {"a": object()})


def test_strategy_accepts_names_in_any_case_and_rejects_unknown():
    assert NamingStrategy.parse("Parameter_Based") is NamingStrategy.PARAMETER_BASED
    with pytest.raises(ConfigError, match="parameter_based"):
        NamingStrategy.parse("random")


# ------------------------------------------------------------------------- property test
_key_part = st.text(
    alphabet=st.sampled_from("abcxyzAB019_-/ äé"), min_size=1, max_size=6
)  # odd characters included
_keys = st.lists(_key_part, min_size=1, max_size=3).map(".".join)
_values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=30),
    st.lists(st.integers(-5, 5), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(_keys, min_size=1, max_size=5, unique=True),
    rows=st.lists(st.lists(_values, min_size=5, max_size=5), min_size=1, max_size=12),
    base=st.text(alphabet=st.sampled_from("ab_-. /é"), min_size=1, max_size=150),
    strategy=st.sampled_from([NamingStrategy.PARAMETER_BASED, NamingStrategy.HASH_BASED]),
)
def test_random_sweeps_get_safe_short_unique_names(keys, rows, base, strategy):
    assignments = []
    seen = set()
    for row_idx, row in enumerate(rows):
        # vary which keys are present, as conditional parameters do
        present = [key for i, key in enumerate(keys) if (row_idx >> i) % 3 != 2 or i == 0]
        assignment = dict(zip(present, row, strict=False))
        identity = canonical_text(assignment)
        if identity not in seen:
            seen.add(identity)
            assignments.append(assignment)
    assume(assignments)
    try:
        names = name_experiments(base, assignments, strategy)
    except ConfigError as err:  # names that differ only in case ("A" / "a") are refused
        assert "only in case" in str(err)
        return
    assert len({name.lower() for name in names}) == len(assignments)
    for name in names:
        assert SAFE.match(name), name
        assert len(name) <= MAX_NAME_LENGTH
    again = name_experiments(base, assignments, strategy)
    assert again == names
