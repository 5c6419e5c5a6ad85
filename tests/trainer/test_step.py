"""The training step's parts: the handover when a loader runs dry, and the validation pass
fed explicitly (no trainer internals)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from model_training_framework.trainer import ValAggregation
from model_training_framework.trainer.data.handover import fetch_scheduled
from model_training_framework.trainer.data.schedule import EpochLengthPolicy, LoaderSchedule
from model_training_framework.trainer.hooks import HookDispatcher, TrainerHooks
from model_training_framework.trainer.metrics.profiling import NullProfiler
from model_training_framework.trainer.optim.precision import Precision
from model_training_framework.trainer.validation import run_validation


def _schedule(cycle):
    schedule = LoaderSchedule(
        "round_robin",
        [None, None],
        policy=EpochLengthPolicy.FIXED_NUM_STEPS,
        steps_per_epoch=6,
        cycle=cycle,
    )
    schedule.start_epoch(0)
    return schedule


def _dry_after(batches_of_loader_0):
    def fetch(slot):
        if slot.loader_idx == 0 and slot.batch_idx >= batches_of_loader_0:
            raise StopIteration
        return (slot.loader_idx, slot.pass_idx, slot.batch_idx)

    return fetch


def test_a_loader_that_runs_dry_hands_over_to_the_next_slot_of_another():
    schedule = _schedule(cycle=False)
    fetch = _dry_after(1)
    taken = [fetch_scheduled(schedule, slot, fetch) for slot in iter(schedule.next_slot, None)]
    batches = [batch for _, batch in filter(None, taken)]
    # loader 0 gives one batch, then its slots go to loader 1 for the rest of the epoch
    assert batches == [(0, 0, 0), (1, 0, 0), (1, 0, 1), (1, 0, 2)]


def test_a_cycling_loader_that_runs_dry_starts_its_next_pass():
    schedule = _schedule(cycle=True)
    slot = schedule.next_slot()
    assert fetch_scheduled(schedule, slot, _dry_after(1))[1] == (0, 0, 0)
    schedule.next_slot()  # loader 1
    replaced, batch = fetch_scheduled(schedule, schedule.next_slot(), _dry_after(1))
    assert (replaced.pass_idx, batch) == (1, (0, 1, 0))


def test_nothing_to_hand_over_to_ends_the_epoch():
    schedule = LoaderSchedule(
        "sequential",
        [None],
        policy=EpochLengthPolicy.FIXED_NUM_STEPS,
        steps_per_epoch=4,
        cycle=False,
    )
    schedule.start_epoch(0)
    fetch = _dry_after(2)
    got = [fetch_scheduled(schedule, slot, fetch) for slot in iter(schedule.next_slot, None)]
    assert [batch for _, batch in filter(None, got)] == [(0, 0, 0), (0, 0, 1)]
    assert got[-1] is None


class _Numbers(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(torch.arange(float(self.n)).reshape(-1, 1))


def test_validation_needs_only_what_it_is_given():
    seen = []

    class Record(TrainerHooks):
        def on_validation_batch_end(self, trainer, batch, batch_idx, idx, name, outputs):
            seen.append((name, batch_idx))

    # a trainer with only the public attributes a step function may use
    trainer = SimpleNamespace(model=torch.nn.Identity(), device=torch.device("cpu"))
    loaders = [DataLoader(_Numbers(3), batch_size=None), DataLoader(_Numbers(2), batch_size=None)]
    schedule = LoaderSchedule(
        "sequential",
        [None, None],
        policy=EpochLengthPolicy.FIXED_NUM_STEPS,
        steps_per_epoch=8,
        cycle=False,
    )
    metrics = run_validation(
        trainer,
        loaders,
        ["a", "b"],
        schedule,
        lambda t, batch, *_: {"value": t.model(batch).sum()},
        aggregation=ValAggregation.MACRO_AVG_EQUAL_LOADERS,
        primary_metric="value",
        custom_fn=None,
        reduce_sum=dict,
        precision=Precision(),
        profiler=NullProfiler(),
        hooks=HookDispatcher([Record()]),
    )
    # each loader ran dry and handed over: every batch once, none repeated
    assert seen == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert metrics["val/dl_a/value"] == pytest.approx(1.0)
    assert metrics["val/dl_b/value"] == pytest.approx(0.5)
