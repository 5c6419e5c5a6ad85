"""Per-decision cost of LoaderSchedule.next_slot() (target: < 5 us with 2 loaders,
< 20 us with 100), measured side by side with a bare Python loop over the same number of items.

Run: ``.venv/bin/python bench/scheduler.py [--items N] [--repeats R]``

For each strategy and loader count it drains one epoch of ``N`` decisions (SUM_OF_LENGTHS,
cycling on) and reports the best of ``R`` runs: the schedule loop, the bare loop
(``for item in items: pass``), and their difference (the schedule's own cost).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from model_training_framework.trainer.data.schedule import (
    EpochLengthPolicy,
    LoaderSchedule,
    SamplingStrategy,
)

TARGETS_US = {2: 5.0, 100: 20.0}


def make_schedule(strategy: SamplingStrategy, num_loaders: int, items: int, burst: int):
    """A schedule whose epoch has exactly ``items`` decisions."""
    base, extra = divmod(items, num_loaders)
    lengths = [base + (1 if idx < extra else 0) for idx in range(num_loaders)]
    return LoaderSchedule(
        strategy,
        lengths,
        policy=EpochLengthPolicy.SUM_OF_LENGTHS,
        weights=[1.0 + (idx % 7) for idx in range(num_loaders)],
        pattern=list(range(num_loaders)),
        burst_size=burst,
    )


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def time_schedule(strategy, num_loaders: int, items: int, burst: int, repeats: int) -> float:
    schedule = make_schedule(strategy, num_loaders, items, burst)
    loop_items = list(range(items))

    def run() -> None:
        schedule.start_epoch(0)
        next_slot = schedule.next_slot
        for _ in loop_items:
            next_slot()

    seconds = best_seconds(run, repeats)
    assert schedule.next_slot() is None, "the epoch should have exactly `items` decisions"
    return seconds


def time_bare_loop(items: int, repeats: int) -> float:
    loop_items = list(range(items))

    def run() -> None:
        for _ in loop_items:
            pass

    return best_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000, help="decisions per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    args = parser.parse_args()
    bare_us = time_bare_loop(args.items, args.repeats) / args.items * 1e6
    header = f"{'strategy':<12} {'loaders':>7} {'burst':>5} {'schedule us':>11} {'bare us':>8}"
    print(f"{header} {'diff us':>8} {'target us':>9}  ok")
    for num_loaders in sorted(TARGETS_US):
        for strategy in SamplingStrategy:
            for burst in (1, 4):
                seconds = time_schedule(strategy, num_loaders, args.items, burst, args.repeats)
                per_us = seconds / args.items * 1e6
                target = TARGETS_US[num_loaders]
                print(
                    f"{strategy.value:<12} {num_loaders:>7} {burst:>5} {per_us:>11.3f} "
                    f"{bare_us:>8.3f} {per_us - bare_us:>8.3f} {target:>9.1f}  "
                    f"{'yes' if per_us < target else 'NO'}"
                )


if __name__ == "__main__":
    main()
