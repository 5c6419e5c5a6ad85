"""Tests for trainer/metrics/aggregation.py (PURE): cross-loader rules and the metric accumulator."""

from __future__ import annotations

import ast
import math
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_training_framework.trainer.metrics import aggregation
from model_training_framework.trainer.metrics.aggregation import (
    MetricAccumulator,
    aggregate_validation,
)

PER_LOADER = {
    "a": {"loss": 1.0, "acc": 0.5},
    "b": {"loss": 4.0, "acc": 0.9, "f1": 0.2},
}
SAMPLES = {"a": 3, "b": 1}


class _Agg(str, Enum):
    """Stand-in for config.ValAggregation: a str-valued enum with the same values."""

    MICRO = "micro_avg_weighted_by_samples"
    MACRO = "macro_avg_equal_loaders"


def test_micro_weights_each_loader_by_its_samples():
    result = aggregate_validation(PER_LOADER, SAMPLES, "micro_avg_weighted_by_samples")

    # loss: (1*3 + 4*1) / 4; acc: (0.5*3 + 0.9*1) / 4; f1 only from b
    assert result == pytest.approx({"loss": 7 / 4, "acc": 2.4 / 4, "f1": 0.2})


def test_macro_counts_each_loader_equally():
    result = aggregate_validation(PER_LOADER, SAMPLES, "macro_avg_equal_loaders")

    assert result == pytest.approx({"loss": 2.5, "acc": 0.7, "f1": 0.2})


def test_primary_metric_per_loader_keeps_only_the_primary_metric():
    result = aggregate_validation(
        PER_LOADER, SAMPLES, "primary_metric_per_loader", primary_metric="acc"
    )

    assert result == pytest.approx({"acc": 0.7})


def test_primary_metric_missing_everywhere_names_the_metric():
    with pytest.raises(ValueError, match=r"'auc'.*validation.primary_metric"):
        aggregate_validation(PER_LOADER, SAMPLES, "primary_metric_per_loader", primary_metric="auc")


def test_custom_uses_the_function_result():
    def best_loss(metrics_by_loader):
        return {"best_loss": min(m["loss"] for m in metrics_by_loader.values())}

    result = aggregate_validation(PER_LOADER, SAMPLES, "custom", custom_fn=best_loss)

    assert result == {"best_loss": 1.0}


def test_custom_function_cannot_mutate_the_callers_metrics():
    per_loader = {"a": {"loss": 1.0}}

    def mutating(metrics_by_loader):
        metrics_by_loader["a"]["loss"] = 99.0
        return {"loss": 0.0}

    aggregate_validation(per_loader, {"a": 1}, "custom", custom_fn=mutating)

    assert per_loader == {"a": {"loss": 1.0}}


def test_custom_without_function_says_which_field_to_set():
    with pytest.raises(ValueError, match=r"validation\.aggregation_fn"):
        aggregate_validation(PER_LOADER, SAMPLES, "custom")


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ([1.0], "must return a mapping"),
        ({1: 1.0}, "non-string key"),
        ({"loss": "low"}, "real numbers"),
        ({"loss": True}, "real numbers"),
    ],
)
def test_custom_result_that_is_not_str_to_number_is_rejected(returned, message):
    with pytest.raises(TypeError, match=message):
        aggregate_validation(PER_LOADER, SAMPLES, "custom", custom_fn=lambda _: returned)


def test_strategy_may_be_a_str_enum_member():
    by_enum = aggregate_validation(PER_LOADER, SAMPLES, _Agg.MACRO)
    by_value = aggregate_validation(PER_LOADER, SAMPLES, "macro_avg_equal_loaders")

    assert by_enum == by_value


def test_strategy_name_in_upper_case_is_accepted():
    result = aggregate_validation(PER_LOADER, SAMPLES, "MICRO_AVG_WEIGHTED_BY_SAMPLES")

    assert result["loss"] == pytest.approx(7 / 4)


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="macro_avg_equal_loaders"):
        aggregate_validation(PER_LOADER, SAMPLES, "median")


def test_micro_without_a_loaders_sample_count_names_the_loader():
    with pytest.raises(ValueError, match="'b'"):
        aggregate_validation(PER_LOADER, {"a": 3}, "micro_avg_weighted_by_samples")


def test_no_loaders_gives_no_metrics():
    assert aggregate_validation({}, {}, "micro_avg_weighted_by_samples") == {}


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.tuples(
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
            st.integers(min_value=1, max_value=1000),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_micro_equals_global_mean_over_all_samples(loaders):
    # Each loader's samples all have the same value, so the global mean over every sample is
    # computable directly from the flat list of samples.
    per_loader = {name: {"m": value} for name, (value, _) in loaders.items()}
    samples = {name: count for name, (_, count) in loaders.items()}
    all_samples = [value for value, count in loaders.values() for _ in range(count)]

    result = aggregate_validation(per_loader, samples, "micro_avg_weighted_by_samples")

    assert result["m"] == pytest.approx(math.fsum(all_samples) / len(all_samples), abs=1e-6)


def _assert_nested_close(actual, expected):
    assert actual.keys() == expected.keys()
    for loader, metrics in expected.items():
        assert actual[loader] == pytest.approx(metrics), loader


def test_accumulator_means_are_sample_weighted():
    acc = MetricAccumulator()
    acc.add("a", {"loss": 1.0, "acc": 1.0}, num_samples=2)
    acc.add("a", {"loss": 4.0}, num_samples=1)
    acc.add("b", {"loss": 3.0}, num_samples=5)

    _assert_nested_close(acc.means(), {"a": {"loss": 2.0, "acc": 1.0}, "b": {"loss": 3.0}})
    assert acc.samples() == {"a": 3, "b": 5}


def test_accumulator_rejects_non_positive_sample_counts():
    with pytest.raises(ValueError, match="positive"):
        MetricAccumulator().add("a", {"loss": 1.0}, num_samples=0)


def test_accumulator_reset_forgets_everything():
    acc = MetricAccumulator()
    acc.add("a", {"loss": 1.0}, num_samples=2)
    acc.reset()

    assert acc.means() == {} and acc.samples() == {} and acc.to_slots() == {}


def test_summed_slots_of_two_ranks_give_the_means_over_both():
    rank0, rank1, together = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    batches0 = [("b", {"loss": 2.0, "acc": 0.5}, 4), ("a", {"loss": 1.0, "acc": 1.0}, 2)]
    batches1 = [("b", {"loss": 6.0, "acc": 0.0}, 4), ("a", {"loss": 3.0, "acc": 0.0}, 2)]
    for name, metrics, n in batches0:
        rank0.add(name, metrics, n)
        together.add(name, metrics, n)
    for name, metrics, n in batches1:
        rank1.add(name, metrics, n)
        together.add(name, metrics, n)
    slots0, slots1 = rank0.to_slots(), rank1.to_slots()
    assert slots0.keys() == slots1.keys()

    rank0.from_slots({slot: slots0[slot] + slots1[slot] for slot in slots0})

    _assert_nested_close(rank0.means(), together.means())
    assert rank0.samples() == together.samples() == {"a": 4, "b": 8}


def test_slots_do_not_depend_on_insertion_order():
    first, second = MetricAccumulator(), MetricAccumulator()
    first.add("a", {"x": 1.0, "y": 2.0}, 1)
    first.add("b", {"x": 3.0}, 1)
    second.add("b", {"x": 3.0}, 1)
    second.add("a", {"y": 2.0, "x": 1.0}, 1)

    assert first.to_slots() == second.to_slots()


def test_from_slots_replaces_the_counts_and_sums():
    acc, source = MetricAccumulator(), MetricAccumulator()
    acc.add("old", {"loss": 9.0}, 5)
    source.add("a", {"loss": 1.0, "acc": 0.5}, 2)
    source.add("a", {"loss": 4.0}, 1)

    acc.from_slots(source.to_slots())

    assert acc.means() == source.means() and acc.samples() == source.samples() == {"a": 3}


def test_module_imports_only_the_standard_library():
    tree = ast.parse(Path(aggregation.__file__).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }

    # its one package import, the running means, is PURE too (tests/test_pure_modules.py)
    assert imported <= {
        "__future__",
        "math",
        "numbers",
        "collections",
        "enum",
        "model_training_framework",
    }
