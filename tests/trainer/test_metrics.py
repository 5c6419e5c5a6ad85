"""Training metrics: sample-weighted means per loader and overall, resumable, reducible."""

from __future__ import annotations

import json
import math

import pytest
import torch

from model_training_framework.trainer.metrics.aggregation import MetricAccumulator
from model_training_framework.trainer.metrics.means import (
    WeightedMeans,
    expand_to,
    loaders_per_rank,
    union_of_keys,
)
from model_training_framework.trainer.metrics.running import TrainMetrics, numeric_items


def test_means_are_weighted_by_batch_samples():
    metrics = TrainMetrics(["a", "b"])
    metrics.add(0, [("loss", torch.tensor(1.0))], num_samples=3)
    metrics.add(0, [("loss", 5.0)], num_samples=1)
    metrics.add(1, [("loss", torch.tensor(10.0)), ("acc", 0.5)], num_samples=4)
    means = metrics.pop_means()
    assert means["train/dl_a/loss"] == pytest.approx((3 * 1 + 5) / 4)
    assert means["train/dl_b/loss"] == 10.0 and means["train/dl_b/acc"] == 0.5
    assert means["train/loss"] == pytest.approx((3 + 5 + 40) / 8)
    assert "train/dl_a/acc" not in means
    assert metrics.pop_means() == {}, "means are since the last call"


def test_pending_values_survive_a_checkpoint():
    def fresh():
        m = TrainMetrics(["a"])
        m.add(0, [("loss", torch.tensor(2.0))], num_samples=2)
        return m

    uninterrupted = fresh()
    restored = TrainMetrics(["a"])
    restored.load_state_dict(json.loads(json.dumps(fresh().state_dict())))
    for m in (uninterrupted, restored):
        m.add(0, [("loss", torch.tensor(4.0))], num_samples=6)
    assert restored.pop_means() == uninterrupted.pop_means()


def test_reduce_sums_weighted_pairs_across_ranks():
    metrics = TrainMetrics(["a"])
    metrics.add(0, [("loss", 1.0)], num_samples=2)
    # another rank contributed a weighted sum of 6.0 over 2 samples
    means = metrics.pop_means(lambda slots: {s: v + (6.0, 2.0)[s[2]] for s, v in slots.items()})
    assert means["train/loss"] == pytest.approx((2 + 6) / 4)


def _two_ranks(*slots_per_rank: dict) -> dict:
    """What ``reduce_sum_by_slot`` returns: the ranks' slots expanded to their union, summed."""
    union = union_of_keys(slots_per_rank)
    summed = [sum(v) for v in zip(*(expand_to(s, union) for s in slots_per_rank), strict=True)]
    return dict(zip(union, summed, strict=True))


def test_union_of_keys_is_sorted_and_expand_fills_zeros_for_missing_keys():
    rank0 = {("a", "loss", 0): 2.0, ("a", "loss", 1): 2.0}
    rank1 = {("a", "recall", 0): 3.0, ("a", "recall", 1): 1.0, ("a", "loss", 1): 4.0}
    union = union_of_keys([rank0, rank1])
    assert union == sorted(set(rank0) | set(rank1), key=repr)
    assert union_of_keys([rank1, rank0]) == union  # the same order on every rank
    assert expand_to(rank0, union) == [2.0, 2.0, 0.0, 0.0]
    assert expand_to(rank1, union) == [0.0, 4.0, 3.0, 1.0]


def test_loaders_per_rank_ignore_overall_slots_and_metric_names():
    every_rank = [
        [("a", "train/dl_a/loss", 0), ("", "train/loss", 0), ("a", "train/dl_a/recall", 0)],
        [("b", "train/dl_b/loss", 0), ("a", "train/dl_a/loss", 0)],
    ]
    assert loaders_per_rank(every_rank) == [["a"], ["a", "b"]]


def test_a_metric_one_rank_lacks_is_its_mean_over_the_batches_that_returned_it():
    rank0, rank1, single = TrainMetrics(["a"]), TrainMetrics(["a"]), TrainMetrics(["a"])
    rank0.add(0, [("loss", 1.0)], num_samples=2)
    rank1.add(0, [("loss", 3.0), ("recall", 0.5)], num_samples=2)
    for items in ([("loss", 1.0)], [("loss", 3.0), ("recall", 0.5)]):
        single.add(0, items, num_samples=2)
    rank1_slots: dict = {}
    rank1.pop_means(lambda slots: rank1_slots.update(slots) or slots)
    means = rank0.pop_means(lambda slots: _two_ranks(slots, rank1_slots))
    assert means == single.pop_means()
    assert means["train/recall"] == means["train/dl_a/recall"] == 0.5
    assert means["train/loss"] == 2.0


def test_validation_slots_of_a_metric_one_rank_lacks_average_where_it_was_returned():
    rank0, rank1, single = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    rank0.add("v", {"loss": 1.0}, num_samples=2)
    rank1.add("v", {"loss": 3.0, "recall": 0.5}, num_samples=4)
    single.add("v", {"loss": 1.0}, num_samples=2)
    single.add("v", {"loss": 3.0, "recall": 0.5}, num_samples=4)
    rank0.from_slots(_two_ranks(rank0.to_slots(), rank1.to_slots()))
    assert rank0.means() == single.means() == {"v": {"loss": pytest.approx(14 / 6), "recall": 0.5}}
    assert rank0.samples() == single.samples() == {"v": 6}


def test_numeric_items_keep_numbers_and_scalar_tensors_only():
    items = dict(
        numeric_items(
            {
                "loss": torch.tensor(1.0, requires_grad=True),
                "n": 3,
                "flag": True,
                "v": torch.ones(3),
                "s": "x",
            }
        )
    )
    assert set(items) == {"loss", "n"} and not items["loss"].requires_grad


def test_training_and_validation_means_are_the_same_arithmetic():
    """Both keep their running means in one WeightedMeans: the same batches give the same means."""
    batches = [(0.1, 3), (0.7, 5), (1e-3, 1), (2.5, 7)]
    train = TrainMetrics(["a"])
    validation = MetricAccumulator()
    for value, samples in batches:
        train.add(0, [("loss", torch.tensor(value, dtype=torch.float64))], num_samples=samples)
        validation.add("a", {"loss": value}, num_samples=samples)
    expected = math.fsum(v * n for v, n in batches) / sum(n for _, n in batches)
    assert train.pop_means()["train/dl_a/loss"] == pytest.approx(expected, rel=1e-15)
    assert validation.means()["a"]["loss"] == pytest.approx(expected, rel=1e-15)


def test_two_ranks_slots_give_the_mean_over_all_samples_not_a_mean_of_rank_means():
    rank0, rank1 = TrainMetrics(["a"]), TrainMetrics(["a"])
    rank0.add(0, [("loss", 2.0)], num_samples=3)
    rank1.add(0, [("loss", 6.0)], num_samples=1)
    rank1_slots: dict = {}
    rank1.pop_means(lambda slots: rank1_slots.update(slots) or slots)
    means = rank0.pop_means(lambda slots: _two_ranks(slots, rank1_slots))
    assert means["train/loss"] == means["train/dl_a/loss"] == 3.0


def test_weighted_means_skip_keys_without_weight():
    means = WeightedMeans()
    means.add("loss", 0.0, 0)
    means.add("acc", 1.0, 2)
    assert means.means() == {"acc": 0.5}
