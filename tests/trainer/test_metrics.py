"""Training metrics: sample-weighted means per loader and overall, resumable, reducible."""

from __future__ import annotations

import json
import math

import pytest
import torch

from model_training_framework.trainer.metrics.aggregation import MetricAccumulator
from model_training_framework.trainer.metrics.means import WeightedMeans
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
    means = metrics.pop_means(
        lambda flat, keys: [x + y for x, y in zip(flat, [6.0, 2.0] * 2, strict=True)]
    )
    assert means["train/loss"] == pytest.approx((2 + 6) / 4)


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


def test_weighted_means_reduce_across_ranks_and_refuse_different_keys():
    rank0, rank1 = WeightedMeans(), WeightedMeans()
    rank0.add("loss", 2.0 * 3, 3)
    rank1.add("loss", 6.0 * 1, 1)
    rank0.load_flat([x + y for x, y in zip(rank0.to_flat(), rank1.to_flat(), strict=True)])
    assert rank0.means() == {"loss": 3.0}

    rank1.add("acc", 1.0, 1)
    with pytest.raises(ValueError, match=r"every rank must add the same keys \['acc', 'loss'\]"):
        rank1.load_flat(rank0.to_flat())


def test_weighted_means_skip_keys_without_weight():
    means = WeightedMeans()
    means.add("loss", 0.0, 0)
    means.add("acc", 1.0, 2)
    assert means.means() == {"acc": 0.5}
