"""PURE: the WEIGHTED order: apportionment of quotas and Tijdeman's low-discrepancy order.

:func:`hamilton_quotas` splits an epoch between loaders by weight, :func:`integer_rates` turns
float weights into exact integer rates, and :class:`WeightedOrder` (an :class:`~.orders.Order`)
interleaves the loaders so that every prefix stays within one burst of its exact share.

NOTE [weighted order]: WEIGHTED uses Tijdeman's chairman-assignment rule, written as
earliest-deadline-first over integer release/deadline times. Loader ``i`` has rate
``r_i / R``; after ``u`` virtual batches it has ``s_i``. With ``m`` loaders of positive rate,
``D = max(2, 2m - 2)`` and ``C = 1 - 1/D``, a burst of ``b`` batches of loader ``i`` may start
at time ``u`` once ``(u + b) r_i / R - s_i >= b / D`` (release) and must start before
``u r_i / R - s_i > b C`` (deadline). Among released loaders the earliest deadline goes first
(ties: lowest index). Tijdeman proved the deadlines are always met, so at every prefix each
loader is within ``b C < b`` batches of its exact share. All arithmetic is on integers, so
the order is exact and identical everywhere. Length-based policies use the epoch's Hamilton
quotas as rates (exact per-epoch counts); FIXED_NUM_STEPS uses the weights themselves and keeps
the cursor across epochs, so shares are exact over the whole run.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from model_training_framework.trainer.data.orders import (
    BURST_LEFT,
    BURST_LOADER,
    Order,
    OrderSettings,
)

__all__ = ["WeightedOrder", "hamilton_quotas", "integer_rates"]

# WeightedOrder state keys (strict loading: a missing key means a corrupt or foreign checkpoint).
WEIGHTS = "weights"
RATES = "rates"
CLOCK = "clock"
SEGMENT_COUNTS = "segment_counts"
HAS_SEGMENT = "has_segment"


def hamilton_quotas(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by the largest-remainder (Hamilton) rule.

    Exact rational arithmetic; ties between equal remainders go to the lower index.

    Args:
        total: number of items to split (>= 0).
        weights: positive weights (need not sum to 1).

    Returns:
        One non-negative integer per weight; they sum to ``total``.

    Example:
        >>> hamilton_quotas(10, [1, 1, 1])
        [4, 3, 3]
    """
    exact_weights = [Fraction(w) for w in weights]
    weight_sum = sum(exact_weights)
    shares = [total * w / weight_sum for w in exact_weights]
    quotas = [math.floor(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (quotas[i] - shares[i], i))
    for idx in by_remainder[: total - sum(quotas)]:
        quotas[idx] += 1
    return quotas


def integer_rates(weights: Sequence[float]) -> list[int]:
    """Exact integer rates proportional to float weights (smallest such integers).

    Args:
        weights: positive, finite weights.

    Returns:
        The smallest positive integers in exactly the proportion of ``weights``.

    Example:
        >>> integer_rates([0.5, 0.25, 0.25])
        [2, 1, 1]
    """
    fractions = [Fraction(w) for w in weights]
    denominator = math.lcm(*(f.denominator for f in fractions))
    rates = [f.numerator * (denominator // f.denominator) for f in fractions]
    divisor = math.gcd(*rates)
    return [rate // divisor for rate in rates]


class WeightedOrder(Order):
    """Low-discrepancy weighted order (see NOTE [weighted order] at the top of this module).

    A *segment* is a stretch with fixed rates: an epoch (length-based policies: rates are the
    Hamilton quotas, each loader stops at its quota), or, with FIXED_NUM_STEPS, the whole run
    (rates are the weights; no caps; the cursor survives epochs). ``update_weights`` starts a
    new segment after the current burst.
    """

    def __init__(self, settings: OrderSettings) -> None:
        super().__init__(settings)
        self.has_exact_quotas = not settings.is_stream
        self.weights = settings.weights
        self._has_segment = False
        self._burst_loader, self._burst_left = 0, 0

    @property
    def burst_loader(self) -> int:
        """Loader of the running burst (meaningful while ``burst_left`` > 0)."""
        return self._burst_loader

    @property
    def burst_left(self) -> int:
        """Batches of the running burst still to be handed out."""
        return self._burst_left

    def plan(self, policy_quotas: list[int]) -> list[int]:
        return hamilton_quotas(sum(policy_quotas), self.weights)

    def begin_epoch(self, quotas: list[int]) -> None:
        if not self._settings.is_stream:
            self._burst_left = 0
            self._start_segment(list(quotas))
        elif not self._has_segment:
            self._start_segment(integer_rates(self.weights))

    def reweight(self, weights: tuple[float, ...], remaining: int) -> list[int] | None:
        """New weights, effective at the next decision; returns new caps (length-based)."""
        self.weights = weights
        if not self._has_segment:
            return None
        if self._settings.is_stream:
            self._start_segment(integer_rates(weights))
            return None
        caps = hamilton_quotas(remaining, weights)
        self._start_segment(caps)
        return caps

    def _start_segment(self, rates: list[int]) -> None:
        self._rates = rates
        self._clock = -self._burst_left  # the running burst belongs to the previous segment
        self._segment_counts = [0] * len(rates)
        self._has_segment = True
        self._prepare()

    def _prepare(self) -> None:
        """Precompute integer constants and rebuild both heaps from the cursor."""
        rates, burst = self._rates, self._settings.burst_size
        total_rate = sum(rates)
        scale = max(2, 2 * sum(1 for rate in rates if rate > 0) - 2)  # D in the NOTE
        self._caps = None if self._settings.is_stream else rates
        self._rate_scaled = [rate * scale for rate in rates]
        self._scaled_total = scale * total_rate
        self._release_offset = burst * total_rate
        self._deadline_offset = burst * (scale - 1) * total_rate
        self._ready: list[tuple[int, int]] = []
        self._pending: list[tuple[int, int, int]] = []
        for idx, rate in enumerate(rates):
            if rate > 0 and (self._caps is None or self._segment_counts[idx] < self._caps[idx]):
                self._push(idx, self._clock + self._burst_left)

    def _push(self, idx: int, next_decision: int) -> None:
        numerator = self._segment_counts[idx] * self._scaled_total
        rate_scaled = self._rate_scaled[idx]
        release = -(-(numerator + self._release_offset) // rate_scaled) - self._settings.burst_size
        deadline = (numerator + self._deadline_offset) // rate_scaled
        if release <= next_decision:
            heapq.heappush(self._ready, (deadline, idx))
        else:
            heapq.heappush(self._pending, (release, deadline, idx))

    def next_loader(self) -> int:
        if self._burst_left:
            self._burst_left -= 1
            self._clock += 1
            return self._burst_loader
        return self._decide()

    def _decide(self) -> int:
        clock, pending, ready = self._clock, self._pending, self._ready
        while pending and pending[0][0] <= clock:
            _, deadline, idx = heapq.heappop(pending)
            heapq.heappush(ready, (deadline, idx))
        if ready:
            idx = heapq.heappop(ready)[1]
        elif pending:  # only with partial bursts at a quota's end: take the next to be released
            idx = heapq.heappop(pending)[2]
        else:
            return -1
        counts, caps, burst = self._segment_counts, self._caps, self._settings.burst_size
        length = burst if caps is None else min(burst, caps[idx] - counts[idx])
        counts[idx] += length
        self._burst_loader, self._burst_left, self._clock = idx, length - 1, clock + 1
        if caps is None or counts[idx] < caps[idx]:
            self._push(idx, clock + length)
        return idx

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            WEIGHTS: list(self.weights),
            HAS_SEGMENT: self._has_segment,
            BURST_LOADER: self._burst_loader,
            BURST_LEFT: self._burst_left,
        }
        if self._has_segment:
            state |= {
                RATES: list(self._rates),
                CLOCK: self._clock,
                SEGMENT_COUNTS: list(self._segment_counts),
            }
        return state

    def load_state_dict(
        self, state: Mapping[str, Any], quotas: list[int], virtual: list[int], dropped: list[bool]
    ) -> None:
        self.weights = tuple(float(w) for w in state[WEIGHTS])
        self._has_segment = bool(state[HAS_SEGMENT])
        self._burst_loader, self._burst_left = int(state[BURST_LOADER]), int(state[BURST_LEFT])
        if self._has_segment:
            self._rates = [int(rate) for rate in state[RATES]]
            self._clock = int(state[CLOCK])
            self._segment_counts = [int(count) for count in state[SEGMENT_COUNTS]]
            self._prepare()
