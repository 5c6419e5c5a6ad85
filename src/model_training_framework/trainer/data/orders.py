"""PURE: the order of one epoch's virtual slots: the order protocol and the simple strategies.

:class:`~model_training_framework.trainer.data.schedule.LoaderSchedule` (the public entry point)
picks one order class per sampling strategy from its strategy table and asks it, decision by
decision, which loader owns the next virtual slot; the schedule keeps positions, quotas and the
checkpoint format. An order's state is a few integers (``state_dict``/``load_state_dict``),
never a list of slots. The vocabulary (*quota*, *virtual slot*) is explained in ``schedule.py``.

This module holds the :class:`Order` protocol, its :class:`OrderSettings` and the orders of
SEQUENTIAL, ROUND_ROBIN and ALTERNATING; WEIGHTED (apportionment and Tijdeman's order, NOTE
[weighted order]) lives in :mod:`.weighted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlternatingOrder",
    "Order",
    "OrderSettings",
    "RoundRobinOrder",
    "SequentialOrder",
]

# Order state keys (strict loading: a missing key means a corrupt or foreign checkpoint).
CURRENT = "current"
BURST_LEFT = "burst_left"
BURST_LOADER = "burst_loader"


@dataclass(frozen=True)
class OrderSettings:
    """What an order needs to know about the configuration."""

    num_loaders: int
    burst_size: int
    is_stream: bool  # FIXED_NUM_STEPS: cursors carry over between epochs
    pattern: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()


class Order:
    """Decides the virtual slot sequence of one epoch.

    ``next_loader`` returns the loader of the next virtual slot, or -1 when none is left.
    ``remove`` is told when a loader's pass ran out without cycling; orders that can leave it
    out cheaply do so, the others keep emitting its slots and the schedule skips them.
    """

    has_exact_quotas: bool = True  # False: quotas() is a plan, the epoch ends after T slots

    def __init__(self, settings: OrderSettings) -> None:
        self._settings = settings

    def plan(self, policy_quotas: list[int]) -> list[int]:
        """Per-loader quotas of the next epoch from the policy's per-loader quotas."""
        return policy_quotas

    def begin_epoch(self, quotas: list[int]) -> None:
        """Reset per-epoch state."""

    def next_loader(self) -> int:
        raise NotImplementedError

    def remove(self, loader_idx: int) -> None:
        """A loader's pass ran out and it does not cycle (default: schedule skips its slots)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(
        self, state: Mapping[str, Any], quotas: list[int], virtual: list[int], dropped: list[bool]
    ) -> None:
        """Restore from ``state`` and the schedule's per-loader epoch counters."""


class SequentialOrder(Order):
    """All of loader 0's quota, then loader 1's, ... (bursts change nothing)."""

    def begin_epoch(self, quotas: list[int]) -> None:
        self._left = list(quotas)
        self._current = 0
        self._skip_finished()

    def _skip_finished(self) -> None:
        left, current = self._left, self._current
        while current < len(left) and left[current] <= 0:
            current += 1
        self._current = current

    def next_loader(self) -> int:
        current = self._current
        if current >= len(self._left):
            return -1
        self._left[current] -= 1
        if not self._left[current]:
            self._skip_finished()
        return current

    def remove(self, loader_idx: int) -> None:
        self._left[loader_idx] = 0
        self._skip_finished()

    def state_dict(self) -> dict[str, Any]:
        return {CURRENT: self._current}

    def load_state_dict(
        self, state: Mapping[str, Any], quotas: list[int], virtual: list[int], dropped: list[bool]
    ) -> None:
        self._left = [
            0 if gone else q - v for q, v, gone in zip(quotas, virtual, dropped, strict=True)
        ]
        self._current = int(state[CURRENT])


class RoundRobinOrder(Order):
    """Loaders take turns in index order, ``burst_size`` batches per turn.

    Loaders with quota left form a doubly linked ring, so finished loaders cost nothing.
    ``_current`` is the loader whose turn it is (or was: the next turn goes to its successor).
    """

    def begin_epoch(self, quotas: list[int]) -> None:
        self._build(list(quotas), current=-1, burst_left=0)

    def _build(self, left: list[int], current: int, burst_left: int) -> None:
        self._left = left
        members = [idx for idx, count in enumerate(left) if count > 0]
        self._in_ring = [count > 0 for count in left]
        self._next = list(range(len(left)))
        self._prev = list(range(len(left)))
        for position, idx in enumerate(members):
            self._next[idx] = members[(position + 1) % len(members)]
            self._prev[idx] = members[position - 1]
        self._num_in_ring = len(members)
        self._current = members[-1] if current < 0 and members else current
        self._burst_left = burst_left

    def next_loader(self) -> int:
        if self._burst_left:
            self._burst_left -= 1
            current = self._current
        else:
            if not self._num_in_ring:
                return -1
            current = self._current = self._next[self._current]
            self._burst_left = self._settings.burst_size - 1
        self._left[current] -= 1
        if not self._left[current]:
            self.remove(current)
        return current

    def remove(self, loader_idx: int) -> None:
        if not self._in_ring[loader_idx]:
            return
        self._in_ring[loader_idx] = False
        self._left[loader_idx] = 0
        before, after = self._prev[loader_idx], self._next[loader_idx]
        self._next[before], self._prev[after] = after, before
        self._num_in_ring -= 1
        if self._current == loader_idx:  # the next turn goes to the loader after it
            self._current, self._burst_left = before, 0

    def state_dict(self) -> dict[str, Any]:
        return {CURRENT: self._current, BURST_LEFT: self._burst_left}

    def load_state_dict(
        self, state: Mapping[str, Any], quotas: list[int], virtual: list[int], dropped: list[bool]
    ) -> None:
        left = [0 if gone else q - v for q, v, gone in zip(quotas, virtual, dropped, strict=True)]
        self._build(left, int(state[CURRENT]), int(state[BURST_LEFT]))


class AlternatingOrder(Order):
    """``pattern`` cyclically for T virtual slots, each entry ``burst_size`` slots long."""

    def plan(self, policy_quotas: list[int]) -> list[int]:
        total, burst = sum(policy_quotas), self._settings.burst_size
        full_cycles, rest = divmod(total, len(self._settings.pattern) * burst)
        quotas = [0] * self._settings.num_loaders
        for entry, idx in enumerate(self._settings.pattern):
            quotas[idx] += full_cycles * burst + min(burst, max(0, rest - entry * burst))
        return quotas

    def begin_epoch(self, quotas: list[int]) -> None:
        self._set_position(0, sum(quotas))

    def _set_position(self, position: int, total: int) -> None:
        burst, size = self._settings.burst_size, len(self._settings.pattern)
        self._position, self._total = position, total
        if position == 0:
            self._entry, self._burst_left = size - 1, 0
        else:
            self._entry = ((position - 1) // burst) % size
            self._burst_left = burst - 1 - (position - 1) % burst

    def next_loader(self) -> int:
        if self._position >= self._total:
            return -1
        self._position += 1
        if self._burst_left:
            self._burst_left -= 1
        else:
            self._entry = (self._entry + 1) % len(self._settings.pattern)
            self._burst_left = self._settings.burst_size - 1
        return self._settings.pattern[self._entry]

    def state_dict(self) -> dict[str, Any]:
        return {CURRENT: self._position}

    def load_state_dict(
        self, state: Mapping[str, Any], quotas: list[int], virtual: list[int], dropped: list[bool]
    ) -> None:
        self._set_position(int(state[CURRENT]), sum(quotas))
