"""Tests for trainer/data/schedule.py (PURE): worked examples, errors, cursor and state."""

from __future__ import annotations

import json
import math
import tracemalloc

import pytest

from model_training_framework.errors import SchedulingError
from model_training_framework.trainer.data.schedule import (
    EpochLengthPolicy,
    LoaderSchedule,
    SamplingStrategy,
    Slot,
    hamilton_quotas,
)

RR = SamplingStrategy.ROUND_ROBIN
SEQ = SamplingStrategy.SEQUENTIAL
ALT = SamplingStrategy.ALTERNATING
WEIGHTED = SamplingStrategy.WEIGHTED
SUM = EpochLengthPolicy.SUM_OF_LENGTHS
MAX = EpochLengthPolicy.MAX_OF_LENGTHS
MIN = EpochLengthPolicy.MIN_OF_LENGTHS
FIXED = EpochLengthPolicy.FIXED_NUM_STEPS


def drain(schedule: LoaderSchedule, true_lengths: dict[int, int] | None = None) -> list[Slot]:
    """All slots of the current epoch; loaders in ``true_lengths`` run dry at that length."""
    true_lengths = true_lengths or {}
    slots = []
    slot = schedule.next_slot()
    while slot is not None:
        limit = true_lengths.get(slot.loader_idx)
        if limit is not None and slot.batch_idx >= limit:
            slot = schedule.mark_exhausted(slot.loader_idx)
            continue
        slots.append(slot)
        slot = schedule.next_slot()
    return slots


def as_text(slots: list[Slot]) -> str:
    return " ".join(f"{'AB'[s.loader_idx]}{s.batch_idx}" for s in slots)


# --- The documented worked examples: A has 3 batches, B has 5, burst 1 (binding) ---------------

WORKED_EXAMPLES = [
    # (strategy, policy, extra kwargs, cycle on, cycle off)
    (RR, SUM, {}, "A0 B0 A1 B1 A2 B2 B3 B4", "A0 B0 A1 B1 A2 B2 B3 B4"),
    (RR, MAX, {}, "A0 B0 A1 B1 A2 B2 A0 B3 A1 B4", "A0 B0 A1 B1 A2 B2 B3 B4"),
    (RR, MIN, {}, "A0 B0 A1 B1 A2 B2", "A0 B0 A1 B1 A2 B2"),
    (SEQ, SUM, {}, "A0 A1 A2 B0 B1 B2 B3 B4", "A0 A1 A2 B0 B1 B2 B3 B4"),
    (SEQ, MAX, {}, "A0 A1 A2 A0 A1 B0 B1 B2 B3 B4", "A0 A1 A2 B0 B1 B2 B3 B4"),
    (SEQ, FIXED, {"steps_per_epoch": 7}, "A0 A1 A2 A0 B0 B1 B2", "A0 A1 A2 B0 B1 B2"),
    (ALT, SUM, {"pattern": [0, 0, 1]}, "A0 A1 B0 A2 A0 B1 A1 A2", "A0 A1 B0 A2 B1"),
]


@pytest.mark.parametrize("cycle", [True, False], ids=["cycle_on", "cycle_off"])
@pytest.mark.parametrize(
    ("strategy", "policy", "kwargs", "with_cycle", "without_cycle"),
    WORKED_EXAMPLES,
    ids=[f"{s.name}-{p.name}" for s, p, *_ in WORKED_EXAMPLES],
)
def test_worked_example_matches_spec_table(
    strategy, policy, kwargs, with_cycle, without_cycle, cycle
):
    schedule = LoaderSchedule(strategy, [3, 5], policy=policy, cycle=cycle, **kwargs)
    schedule.start_epoch(0)
    assert as_text(drain(schedule)) == (with_cycle if cycle else without_cycle)


def test_cycled_batches_belong_to_a_new_pass():
    schedule = LoaderSchedule(RR, [3, 5], policy=MAX)
    schedule.start_epoch(0)
    slots = drain(schedule)
    assert [s.pass_idx for s in slots if s.loader_idx == 0] == [0, 0, 0, 1, 1]
    assert [s.pass_idx for s in slots if s.loader_idx == 1] == [0] * 5


def test_worked_example_fixed_quotas_give_first_loaders_the_remainder():
    schedule = LoaderSchedule(SEQ, [3, 5], policy=FIXED, steps_per_epoch=7)
    assert schedule.quotas() == [4, 3]
    assert schedule.epoch_length() == 7


# --- quotas ----------------------------------------------------------------------------------


def test_hamilton_quotas_use_largest_remainders_with_ties_to_lower_index():
    assert hamilton_quotas(10, [1, 1, 1]) == [4, 3, 3]
    assert hamilton_quotas(7, [0.5, 0.3, 0.2]) == [4, 2, 1]  # 3.5, 2.1, 1.4 -> largest .5
    assert hamilton_quotas(0, [1, 2]) == [0, 0]


def test_weights_need_not_sum_to_one():
    scaled = LoaderSchedule(WEIGHTED, [10, 10, 10], weights=[5, 3, 2])
    unit = LoaderSchedule(WEIGHTED, [10, 10, 10], weights=[0.5, 0.3, 0.2])
    assert scaled.quotas() == unit.quotas() == [15, 9, 6]


@pytest.mark.parametrize(
    ("policy", "expected_length"), [(SUM, 8), (MAX, 10), (MIN, 6)], ids=["sum", "max", "min"]
)
def test_weighted_epoch_length_follows_policy(policy, expected_length):
    schedule = LoaderSchedule(WEIGHTED, [3, 5], policy=policy, weights=[1, 1])
    schedule.start_epoch(0)
    assert schedule.epoch_length() == expected_length
    assert len(drain(schedule)) == expected_length


def test_alternating_quota_counts_pattern_entries_with_bursts():
    schedule = LoaderSchedule(ALT, [4, 4, 4], pattern=[0, 2, 0], burst_size=2)
    # T = 12 slots: 0 0 2 2 0 0 | 0 0 2 2 0 0
    assert schedule.quotas() == [8, 0, 4]
    schedule.start_epoch(0)
    assert [s.loader_idx for s in drain(schedule)] == [0, 0, 2, 2, 0, 0] * 2


def test_round_robin_burst_gives_consecutive_batches_per_turn():
    schedule = LoaderSchedule(RR, [5, 2], burst_size=2)
    schedule.start_epoch(0)
    assert [(s.loader_idx, s.batch_idx) for s in drain(schedule)] == [
        (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (0, 4)
    ]  # fmt: skip


def test_weighted_order_interleaves_instead_of_grouping():
    schedule = LoaderSchedule(WEIGHTED, [4, 4], weights=[1, 1])
    schedule.start_epoch(0)
    loaders = [s.loader_idx for s in drain(schedule)]
    assert sorted(loaders) == [0] * 4 + [1] * 4
    assert all(loaders[k] != loaders[k + 1] for k in range(len(loaders) - 1))


def test_counts_track_batches_handed_out_this_epoch():
    schedule = LoaderSchedule(WEIGHTED, [6, 6], weights=[2, 1])
    schedule.start_epoch(0)
    for _ in range(3):
        schedule.next_slot()
    assert sum(schedule.counts()) == 3
    drain(schedule)
    assert schedule.counts() == schedule.quotas() == [8, 4]
    schedule.start_epoch(1)
    assert schedule.counts() == [0, 0]


# --- epochs and positions --------------------------------------------------------------------


def test_length_based_epoch_starts_every_used_loader_at_a_fresh_pass():
    schedule = LoaderSchedule(RR, [3, 5], policy=MIN)
    schedule.start_epoch(0)
    drain(schedule)
    assert schedule.positions() == [(0, 3), (0, 3)]
    schedule.start_epoch(1)
    first = drain(schedule)
    assert as_text(first) == "A0 B0 A1 B1 A2 B2"
    assert {s.pass_idx for s in first} == {1}


def test_unused_pass_is_not_skipped_at_epoch_start():
    schedule = LoaderSchedule(ALT, [2, 2], pattern=[0])
    schedule.start_epoch(0)
    drain(schedule)
    schedule.start_epoch(1)
    assert schedule.positions() == [(2, 0), (0, 0)]  # passes 0 and 1 were used


def test_fixed_steps_carry_positions_over_epochs():
    schedule = LoaderSchedule(RR, [5, 3], policy=FIXED, steps_per_epoch=4)
    schedule.start_epoch(0)
    assert as_text(drain(schedule)) == "A0 B0 A1 B1"
    schedule.start_epoch(1)
    second = drain(schedule)
    assert as_text(second) == "A2 B2 A3 B0"
    assert [s.pass_idx for s in second] == [0, 0, 0, 1]


def test_fixed_steps_without_cycling_restart_a_used_up_pass_next_epoch():
    schedule = LoaderSchedule(SEQ, [3, 5], policy=FIXED, steps_per_epoch=7, cycle=False)
    schedule.start_epoch(0)
    assert as_text(drain(schedule)) == "A0 A1 A2 B0 B1 B2"
    schedule.start_epoch(1)
    second = drain(schedule)
    assert as_text(second) == "A0 A1 A2 B3 B4"
    assert [s.pass_idx for s in second] == [1, 1, 1, 0, 0]


def test_next_slot_keeps_returning_none_after_the_epoch():
    schedule = LoaderSchedule(RR, [1, 1])
    schedule.start_epoch(0)
    drain(schedule)
    assert schedule.next_slot() is None
    assert schedule.next_slot() is None


def test_next_slot_before_start_epoch_raises():
    schedule = LoaderSchedule(RR, [1, 1])
    with pytest.raises(SchedulingError, match="start_epoch"):
        schedule.next_slot()


# --- unknown-length loaders --------------------------------------------------------------------


def test_unknown_length_loader_cycles_when_it_runs_dry():
    schedule = LoaderSchedule(RR, [None, 4], policy=FIXED, steps_per_epoch=8)
    schedule.start_epoch(0)
    slots = drain(schedule, true_lengths={0: 2})
    assert [(s.loader_idx, s.pass_idx, s.batch_idx) for s in slots] == [
        (0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1),
        (0, 1, 0), (1, 0, 2), (0, 1, 1), (1, 0, 3),
    ]  # fmt: skip


def test_unknown_length_loader_without_cycling_is_dropped_for_the_epoch():
    schedule = LoaderSchedule(RR, [None, 4], policy=FIXED, steps_per_epoch=8, cycle=False)
    schedule.start_epoch(0)
    slots = drain(schedule, true_lengths={0: 2})
    assert as_text(slots) == "A0 B0 A1 B1 B2 B3"
    assert schedule.counts() == [2, 4]
    schedule.start_epoch(1)
    assert schedule.next_slot() == Slot(0, 1, 0)


def test_unknown_length_loader_that_ran_out_at_an_epoch_end_restarts_without_cycling():
    schedule = LoaderSchedule(SEQ, [None], policy=FIXED, steps_per_epoch=2, cycle=False)
    schedule.start_epoch(0)
    assert len(drain(schedule, true_lengths={0: 2})) == 2
    schedule.start_epoch(1)
    slot = schedule.next_slot()
    assert slot == Slot(0, 0, 2)
    assert schedule.mark_exhausted(0) == Slot(0, 1, 0)


def test_mark_exhausted_on_first_batch_of_a_pass_reports_an_empty_loader():
    schedule = LoaderSchedule(RR, [None, 2], policy=FIXED, steps_per_epoch=4, names=["a", "b"])
    schedule.start_epoch(0)
    schedule.next_slot()
    with pytest.raises(SchedulingError, match=r"loader 0 \('a'\).*empty"):
        schedule.mark_exhausted(0)


def test_mark_exhausted_for_another_loader_than_the_last_slot_raises():
    schedule = LoaderSchedule(RR, [None, None], policy=FIXED, steps_per_epoch=4)
    schedule.start_epoch(0)
    schedule.next_slot()
    with pytest.raises(SchedulingError, match="slot just returned"):
        schedule.mark_exhausted(1)


def test_mark_exhausted_for_a_known_length_loader_raises():
    schedule = LoaderSchedule(RR, [3, None], policy=FIXED, steps_per_epoch=4)
    schedule.start_epoch(0)
    schedule.next_slot()
    with pytest.raises(SchedulingError, match="__len__"):
        schedule.mark_exhausted(0)


# --- weights ----------------------------------------------------------------------------------


def test_update_weights_resplits_the_rest_of_the_epoch():
    schedule = LoaderSchedule(WEIGHTED, [10, 10], weights=[1, 1])
    schedule.start_epoch(0)
    first = [schedule.next_slot() for _ in range(10)]
    assert [s.loader_idx for s in first].count(0) == 5
    schedule.update_weights([3, 1])
    rest = drain(schedule)
    assert [s.loader_idx for s in rest].count(0) == 8  # 10 remaining slots split 3:1 -> 7.5
    assert schedule.quotas() == schedule.counts() == [13, 7]


def test_update_weights_waits_for_the_running_burst():
    schedule = LoaderSchedule(WEIGHTED, [12, 12], weights=[1, 1], burst_size=3)
    schedule.start_epoch(0)
    first = schedule.next_slot()
    schedule.update_weights([1, 1000])
    following = [schedule.next_slot().loader_idx for _ in range(2)]
    assert following == [first.loader_idx] * 2
    assert sum(schedule.quotas()) == 24


def test_update_weights_under_fixed_steps_gives_new_shares_from_then_on():
    schedule = LoaderSchedule(
        WEIGHTED, [None, None], policy=FIXED, steps_per_epoch=100, weights=[1, 1]
    )
    schedule.start_epoch(0)
    for _ in range(50):
        schedule.next_slot()
    schedule.update_weights([4, 1])
    rest = drain(schedule)
    assert [s.loader_idx for s in rest].count(0) == 40
    assert schedule.weights == (4.0, 1.0)


def test_update_weights_needs_the_weighted_strategy():
    schedule = LoaderSchedule(RR, [2, 2])
    with pytest.raises(SchedulingError, match="WEIGHTED"):
        schedule.update_weights([1, 1])


def test_update_weights_validates_like_the_constructor():
    schedule = LoaderSchedule(WEIGHTED, [2, 2], weights=[1, 1])
    with pytest.raises(SchedulingError, match="one weight per loader"):
        schedule.update_weights([1, 1, 1])
    with pytest.raises(SchedulingError, match="finite and > 0"):
        schedule.update_weights([1, -1])


# --- bad input ---------------------------------------------------------------------------------

BAD_INPUTS = [
    # (args, kwargs, message fragment)
    ((RR, [3, 0]), {}, "empty"),
    ((RR, []), {}, "at least one loader"),
    ((RR, [3, -2]), {}, "empty"),
    ((RR, [3, 2.5]), {}, "int or None"),
    ((WEIGHTED, [3, 3]), {"weights": [1, 0]}, "finite and > 0"),
    ((WEIGHTED, [3, 3]), {"weights": [1, -0.5]}, "finite and > 0"),
    ((WEIGHTED, [3, 3]), {"weights": [1, math.nan]}, "finite and > 0"),
    ((WEIGHTED, [3, 3]), {"weights": [1, math.inf]}, "finite and > 0"),
    ((WEIGHTED, [3, 3]), {"weights": [1, "x"]}, "must be a number"),
    ((WEIGHTED, [3, 3]), {"weights": [1, 2, 3]}, "3 entries but there are 2 loaders"),
    ((WEIGHTED, [3, 3]), {}, "needs dataloader_weights"),
    ((ALT, [3, 3]), {"pattern": [0, 2]}, r"alternating_pattern\[1\] is 2"),
    ((ALT, [3, 3]), {"pattern": [0, -1]}, r"alternating_pattern\[1\] is -1"),
    ((ALT, [3, 3]), {}, "needs alternating_pattern"),
    ((ALT, [3, 3]), {"pattern": []}, "needs alternating_pattern"),
    ((RR, [3, 3]), {"names": ["a"]}, "dataloader_names has 1 entries"),
    ((RR, [3, None]), {}, "use EpochLengthPolicy.FIXED_NUM_STEPS with steps_per_epoch"),
    ((RR, [3, None]), {"policy": MAX}, "use EpochLengthPolicy.FIXED_NUM_STEPS with steps_per_epoch"),
    ((RR, [3, 3]), {"burst_size": 0}, "burst_size must be >= 1"),
    ((RR, [3, 3]), {"burst_size": 1.5}, "burst_size must be an integer"),
    ((RR, [3, 3]), {"policy": FIXED}, "needs steps_per_epoch"),
    ((RR, [3, 3]), {"policy": FIXED, "steps_per_epoch": 0}, "steps_per_epoch must be >= 1"),
    (("zigzag", [3, 3]), {}, "sampling_strategy must be one of"),
    ((RR, [3, 3]), {"policy": "longest"}, "epoch_length_policy must be one of"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "message"), BAD_INPUTS)
def test_bad_input_raises_value_error_naming_the_fix(args, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        LoaderSchedule(*args, **kwargs)
    assert isinstance(info.value, SchedulingError)


def test_error_for_empty_loader_names_it():
    with pytest.raises(SchedulingError, match=r"loader 1 \('val_b'\) is empty"):
        LoaderSchedule(RR, [3, 0], names=["val_a", "val_b"])


def test_strategy_and_policy_accept_values_and_names():
    schedule = LoaderSchedule("WEIGHTED", [2, 2], policy="max_of_lengths", weights=[1, 1])
    assert schedule.strategy is WEIGHTED
    assert schedule.policy is MAX


def test_unused_weights_and_pattern_are_not_checked_for_other_strategies():
    schedule = LoaderSchedule(RR, [2, 2], weights=[1], pattern=[9])
    assert schedule.weights is None


# --- state -------------------------------------------------------------------------------------


def run_with_restore(make, epochs: int, stop_after: int, true_lengths=None) -> list[Slot]:
    """Run ``epochs`` epochs, save after ``stop_after`` slots, restore into a fresh schedule."""
    true_lengths = true_lengths or {}
    schedule, slots = make(), []
    for epoch in range(epochs):
        schedule.start_epoch(epoch)
        slot = schedule.next_slot()
        while slot is not None:
            limit = true_lengths.get(slot.loader_idx)
            if limit is not None and slot.batch_idx >= limit:
                slot = schedule.mark_exhausted(slot.loader_idx)
                continue
            slots.append(slot)
            if len(slots) == stop_after:
                state = json.loads(json.dumps(schedule.state_dict()))
                schedule = make()
                schedule.load_state_dict(state)
            slot = schedule.next_slot()
    return slots


def uninterrupted(make, epochs: int, true_lengths=None) -> list[Slot]:
    schedule, slots = make(), []
    for epoch in range(epochs):
        schedule.start_epoch(epoch)
        slots += drain(schedule, true_lengths)
    return slots


RESUME_CASES = {
    "rr-burst-max-cycle": lambda: LoaderSchedule(RR, [3, 5, 2], policy=MAX, burst_size=2),
    "rr-fixed-unknown-length": lambda: LoaderSchedule(
        RR, [3, None], policy=FIXED, steps_per_epoch=7, cycle=False
    ),
    "seq-fixed-no-cycle": lambda: LoaderSchedule(
        SEQ, [3, 5], policy=FIXED, steps_per_epoch=7, cycle=False
    ),
    "alt-burst-sum-no-cycle": lambda: LoaderSchedule(
        ALT, [3, 5], pattern=[0, 0, 1], burst_size=2, cycle=False
    ),
    "weighted-burst-max": lambda: LoaderSchedule(
        WEIGHTED, [3, 5, 4], policy=MAX, weights=[0.5, 0.2, 0.3], burst_size=3
    ),
    "weighted-fixed-stream": lambda: LoaderSchedule(
        WEIGHTED, [3, None], policy=FIXED, steps_per_epoch=7, weights=[2, 1], burst_size=2
    ),
}


@pytest.mark.parametrize("make", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_restore_at_every_position_continues_identically(make):
    true_lengths = {1: 4} if make().lengths[1] is None else {}
    expected = uninterrupted(make, epochs=3, true_lengths=true_lengths)
    for stop_after in range(1, len(expected)):
        assert run_with_restore(make, 3, stop_after, true_lengths) == expected, stop_after


def test_restore_mid_burst_continues_the_burst():
    make = RESUME_CASES["weighted-burst-max"]
    schedule = make()
    schedule.start_epoch(0)
    first = schedule.next_slot()
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert restored.next_slot().loader_idx == first.loader_idx


def test_restored_schedule_reports_the_same_quotas_counts_and_positions():
    schedule = LoaderSchedule(WEIGHTED, [4, 7], weights=[1, 3], policy=MAX)
    schedule.start_epoch(2)
    for _ in range(5):
        schedule.next_slot()
    restored = LoaderSchedule(WEIGHTED, [4, 7], weights=[1, 3], policy=MAX)
    restored.load_state_dict(schedule.state_dict())
    assert restored.epoch == 2
    assert restored.quotas() == schedule.quotas()
    assert restored.counts() == schedule.counts()
    assert restored.positions() == schedule.positions()


def test_restore_keeps_updated_weights():
    schedule = LoaderSchedule(WEIGHTED, [9, 9], weights=[1, 1])
    schedule.start_epoch(0)
    schedule.next_slot()
    schedule.update_weights([5, 1])
    restored = LoaderSchedule(WEIGHTED, [9, 9], weights=[1, 1])
    restored.load_state_dict(schedule.state_dict())
    assert restored.weights == (5.0, 1.0)
    assert drain(restored) == drain(schedule)


def test_load_state_dict_with_a_missing_key_raises():
    schedule = LoaderSchedule(RR, [2, 2])
    state = schedule.state_dict()
    del state["batch_pos"]
    with pytest.raises(SchedulingError, match="batch_pos"):
        LoaderSchedule(RR, [2, 2]).load_state_dict(state)


def test_load_state_dict_with_a_missing_order_key_raises():
    schedule = LoaderSchedule(WEIGHTED, [2, 2], weights=[1, 1])
    schedule.start_epoch(0)
    state = schedule.state_dict()
    del state["order"]["clock"]
    with pytest.raises(SchedulingError, match="clock"):
        LoaderSchedule(WEIGHTED, [2, 2], weights=[1, 1]).load_state_dict(state)


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (lambda: LoaderSchedule(RR, [2, 3]), "lengths"),
        (lambda: LoaderSchedule(SEQ, [2, 2]), "strategy"),
        (lambda: LoaderSchedule(RR, [2, 2], burst_size=2), "burst_size"),
        (lambda: LoaderSchedule(RR, [2, 2], cycle=False), "cycle"),
    ],
)
def test_load_state_dict_from_a_differently_configured_schedule_raises(other, field):
    state = LoaderSchedule(RR, [2, 2]).state_dict()
    with pytest.raises(SchedulingError, match=field):
        other().load_state_dict(state)


def test_same_inputs_give_the_same_sequence():
    def make():
        return LoaderSchedule(WEIGHTED, [7, 3, 9], weights=[0.7, 0.1, 0.2], burst_size=2)

    assert uninterrupted(make, 2) == uninterrupted(make, 2)


def test_ten_million_step_epoch_keeps_state_and_memory_small():
    tracemalloc.start()
    try:
        schedule = LoaderSchedule(
            WEIGHTED,
            [None, 1000, None],
            policy=FIXED,
            steps_per_epoch=10_000_000,
            weights=[0.5, 0.3, 0.2],
        )
        schedule.start_epoch(0)
        for _ in range(2000):
            schedule.next_slot()
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert schedule.epoch_length() == 10_000_000
    assert peak_bytes < 200_000
    assert len(json.dumps(schedule.state_dict())) < 2_000
