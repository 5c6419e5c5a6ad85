"""PURE: which loader gives the next batch: quotas, order and cursor for the four strategies.

The schedule is a pure function of (configuration, loader lengths, epoch, cursor). Its state
is a few integers per loader, never a list of slots, so infinite and very long epochs cost
O(number of loaders) memory, and every rank and every rerun computes the same sequence.

Vocabulary used below:

- *quota*: how many batches loader ``i`` is planned to give in the epoch (set by the epoch
  length policy, see ``POLICY_QUOTAS`` in :mod:`.inputs`).
- *virtual slot*: one position of the planned sequence of length ``T = epoch_length()``. With
  ``cycle=False`` a loader whose pass ran out loses its remaining virtual slots: they are
  skipped and the epoch gets shorter (docs/multi_loader.md's worked example shows both cases).
- *position*: where each loader is, as ``(pass_idx, next batch_idx)``. The schedule is the
  single source of truth for it, so a resumed run reopens every loader by index arithmetic.

Example:
    >>> schedule = LoaderSchedule(SamplingStrategy.ROUND_ROBIN, [3, 5])
    >>> schedule.start_epoch(0)
    >>> [(s.loader_idx, s.batch_idx) for s in iter(schedule.next_slot, None)][:4]
    [(0, 0), (1, 0), (0, 1), (1, 1)]

The per-strategy orders live in :mod:`.orders` and :mod:`.weighted` (NOTE [weighted order]);
the enums, argument checks and per-policy quotas live in :mod:`.inputs`; the cursor (positions,
the per-batch ``next_slot``, epoch boundaries, loaders that run dry) lives in :mod:`.cursor`.
This module is the public entry point: :class:`LoaderSchedule` checks its arguments, picks the
order and the quotas, changes weights, and versions the checkpoint against its configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from model_training_framework.errors import SchedulingError
from model_training_framework.trainer.data.cursor import EPOCH as EPOCH  # re-exported key
from model_training_framework.trainer.data.cursor import POSITION as POSITION  # re-exported key
from model_training_framework.trainer.data.cursor import ScheduleCursor, Slot
from model_training_framework.trainer.data.inputs import (
    POLICY_QUOTAS,
    EpochLengthPolicy,
    SamplingStrategy,
    check_int,
    check_lengths,
    check_names,
    check_pattern,
    check_weights,
    coerce_enum,
)
from model_training_framework.trainer.data.orders import (
    AlternatingOrder,
    Order,
    OrderSettings,
    RoundRobinOrder,
    SequentialOrder,
)
from model_training_framework.trainer.data.weighted import WeightedOrder, hamilton_quotas

__all__ = [
    "EpochLengthPolicy",
    "LoaderSchedule",
    "SamplingStrategy",
    "Slot",
    "hamilton_quotas",
]

logger = logging.getLogger(__name__)

STATE_VERSION = 1

# State keys (strict loading: a missing key means a corrupt or foreign checkpoint): the version
# and the configuration here, the cursor's keys in cursor.py (EPOCH, POSITION re-exported).
VERSION = "version"
STRATEGY = "strategy"
POLICY = "policy"
LENGTHS = "lengths"
BURST_SIZE = "burst_size"
CYCLE = "cycle"
STEPS_PER_EPOCH = "steps_per_epoch"


# ---------------------------------------------------------------------------------------------
# Orders: one small class per strategy (in orders.py, weighted.py), picked from _ORDERS
# ---------------------------------------------------------------------------------------------


_ORDERS: dict[SamplingStrategy, type[Order]] = {
    SamplingStrategy.SEQUENTIAL: SequentialOrder,
    SamplingStrategy.ROUND_ROBIN: RoundRobinOrder,
    SamplingStrategy.ALTERNATING: AlternatingOrder,
    SamplingStrategy.WEIGHTED: WeightedOrder,
}


# ---------------------------------------------------------------------------------------------
# The schedule
# ---------------------------------------------------------------------------------------------


class LoaderSchedule(ScheduleCursor):
    """Decides, micro-step by micro-step, which loader gives the next batch.

    Args:
        strategy: a :class:`SamplingStrategy` (or its value/name as a string).
        lengths: each loader's length in batches; ``None`` for loaders without ``__len__``
            (allowed only with ``EpochLengthPolicy.FIXED_NUM_STEPS``).
        policy: how long an epoch is, and so each loader's quota.
        weights: WEIGHTED only: one positive weight per loader (need not sum to 1).
        pattern: ALTERNATING only: loader indices followed cyclically.
        steps_per_epoch: FIXED_NUM_STEPS only: batches per epoch (>= 1).
        cycle: when a loader's quota exceeds what it has left, start a new pass (True) or
            drop its remaining slots so that the epoch gets shorter (False).
        burst_size: consecutive batches a loader gives per turn (>= 1).
        names: loader names, used in error messages.

    Raises:
        SchedulingError: (a ValueError) bad input; the message names the fix.

    Example:
        >>> s = LoaderSchedule("sequential", [2, 1])
        >>> s.start_epoch(0)
        >>> [(x.loader_idx, x.batch_idx) for x in iter(s.next_slot, None)]
        [(0, 0), (0, 1), (1, 0)]

    Positions: with length-based policies every epoch starts each loader at a fresh pass (a
    pass that has not given a batch yet counts as fresh); with FIXED_NUM_STEPS positions carry
    over between epochs (a pass that ran out without cycling is replaced by a fresh one at the
    next epoch), and WEIGHTED shares are exact over the whole run.
    """

    def __init__(
        self,
        strategy: SamplingStrategy | str,
        lengths: Sequence[int | None],
        *,
        policy: EpochLengthPolicy | str = EpochLengthPolicy.SUM_OF_LENGTHS,
        weights: Sequence[float] | None = None,
        pattern: Sequence[int] | None = None,
        steps_per_epoch: int | None = None,
        cycle: bool = True,
        burst_size: int = 1,
        names: Sequence[str] | None = None,
    ) -> None:
        self.strategy = coerce_enum(SamplingStrategy, strategy, "sampling_strategy")
        self.policy = coerce_enum(EpochLengthPolicy, policy, "epoch_length_policy")
        checked_names = check_names(names, len(lengths))
        checked_lengths = check_lengths(lengths, self.policy, checked_names)
        self.burst_size = check_int(burst_size, "burst_size", 1, "Use 1 for no bursts")
        self.steps_per_epoch = self._check_steps(steps_per_epoch)
        num_loaders = len(checked_lengths)
        settings = OrderSettings(
            num_loaders=num_loaders,
            burst_size=self.burst_size,
            is_stream=self.policy is EpochLengthPolicy.FIXED_NUM_STEPS,
            pattern=(
                check_pattern(pattern, num_loaders)
                if self.strategy is SamplingStrategy.ALTERNATING
                else ()
            ),
            weights=(
                check_weights(weights, num_loaders, checked_names)
                if self.strategy is SamplingStrategy.WEIGHTED
                else ()
            ),
        )
        policy_quotas = POLICY_QUOTAS[self.policy](checked_lengths, self.steps_per_epoch)
        order = _ORDERS[self.strategy](settings)
        super().__init__(
            checked_lengths, checked_names, bool(cycle), order, policy_quotas, settings.is_stream
        )

    def _check_steps(self, steps_per_epoch: int | None) -> int | None:
        if self.policy is not EpochLengthPolicy.FIXED_NUM_STEPS:
            return steps_per_epoch
        if steps_per_epoch is None:
            raise SchedulingError(
                "EpochLengthPolicy.FIXED_NUM_STEPS needs steps_per_epoch (batches per epoch, >= 1)"
            )
        return check_int(steps_per_epoch, "steps_per_epoch", 1, "Give batches per epoch")

    # -- weights ------------------------------------------------------------------------------

    def update_weights(self, weights: Sequence[float]) -> None:
        """Change WEIGHTED weights, effective from the next decision (the next burst).

        Length-based policies re-split the rest of the epoch by the new weights; with
        FIXED_NUM_STEPS shares are exact from the change on.

        Args:
            weights: one positive, finite weight per loader.

        Raises:
            SchedulingError: not WEIGHTED, or bad weights.
        """
        if not isinstance(self._order, WeightedOrder):
            raise SchedulingError(
                f"update_weights() needs SamplingStrategy.WEIGHTED; this schedule is "
                f"{self.strategy.name}"
            )
        checked = check_weights(weights, len(self.lengths), self.names)
        order = self._order
        remaining = sum(self._policy_quotas) - self._position - order.burst_left
        caps = order.reweight(checked, remaining)
        if not self._is_started or caps is None:
            self._quotas = order.plan(self._policy_quotas)
        else:
            self._quotas = [virtual + cap for virtual, cap in zip(self._virtual, caps, strict=True)]
            self._quotas[order.burst_loader] += order.burst_left
            self._slots_left = self._active_slots_left()

    @property
    def weights(self) -> tuple[float, ...] | None:
        """Current WEIGHTED weights (None for other strategies)."""
        return self._order.weights if isinstance(self._order, WeightedOrder) else None

    # -- state --------------------------------------------------------------------------------

    def _fingerprint(self) -> dict[str, Any]:
        return {
            STRATEGY: self.strategy.value,
            POLICY: self.policy.value,
            LENGTHS: list(self.lengths),
            BURST_SIZE: self.burst_size,
            CYCLE: self.cycle,
            STEPS_PER_EPOCH: self.steps_per_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        """Save the cursor.

        Returns:
            A JSON-able dict of O(number of loaders) ints, floats and bools: the configuration
            fingerprint, epoch, position, per-loader quotas, counts, passes and batch
            positions, and the order's state (turn, burst, weights, WEIGHTED clock).
        """
        return {
            VERSION: STATE_VERSION,
            **self._fingerprint(),
            **self._cursor_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a cursor saved by :meth:`state_dict`; the sequence continues exactly.

        Args:
            state: what :meth:`state_dict` returned (also after a JSON round trip).

        Raises:
            SchedulingError: a missing key, another version, or a schedule configured
                differently (strategy, policy, lengths, burst size, cycling, steps).
        """
        try:
            self._load(state)
        except KeyError as err:
            raise SchedulingError(
                f"loader schedule state lacks key {err.args[0]!r}: the checkpoint is corrupt "
                "or was not written by LoaderSchedule.state_dict()"
            ) from err

    def _load(self, state: Mapping[str, Any]) -> None:
        if state[VERSION] != STATE_VERSION:
            raise SchedulingError(
                f"loader schedule state has version {state[VERSION]!r}; this framework reads "
                f"version {STATE_VERSION}"
            )
        for key, expected in self._fingerprint().items():
            if state[key] != expected:
                raise SchedulingError(
                    f"loader schedule state was saved with {key}={state[key]!r} but this run "
                    f"has {key}={expected!r}; resume with the same loaders and configuration "
                    "or start a fresh run"
                )
        self._load_cursor(state)
