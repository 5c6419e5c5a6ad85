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
the enums, argument checks and per-policy quotas live in :mod:`.inputs`; this module is the
public entry point and owns positions, the cursor and the checkpoint format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from model_training_framework.errors import SchedulingError
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
    loader_label,
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

# State keys (strict loading: a missing key means a corrupt or foreign checkpoint).
VERSION = "version"
STRATEGY = "strategy"
POLICY = "policy"
LENGTHS = "lengths"
BURST_SIZE = "burst_size"
CYCLE = "cycle"
STEPS_PER_EPOCH = "steps_per_epoch"
IS_STARTED = "is_started"
EPOCH = "epoch"
POSITION = "position"
LAST_LOADER = "last_loader"
QUOTAS = "quotas"
VIRTUAL = "virtual"
COUNTS = "counts"
DROPPED = "dropped"
PASS_IDX = "pass_idx"
BATCH_POS = "batch_pos"
ORDER = "order"


class Slot(NamedTuple):
    """One scheduled batch.

    Attributes:
        loader_idx: position of the loader in the list of loaders.
        pass_idx: run-wide 0-based index of this loader's pass (a pass is one run through it).
        batch_idx: 0-based index of the batch within that pass.

    A named tuple: one is made per batch, and a tuple is the cheapest to make.
    """

    loader_idx: int
    pass_idx: int
    batch_idx: int


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


class LoaderSchedule:
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
        self.names = check_names(names, len(lengths))
        self.lengths = check_lengths(lengths, self.policy, self.names)
        self.burst_size = check_int(burst_size, "burst_size", 1, "Use 1 for no bursts")
        self.cycle = bool(cycle)
        self.steps_per_epoch = self._check_steps(steps_per_epoch)
        num_loaders = len(self.lengths)
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
                check_weights(weights, num_loaders, self.names)
                if self.strategy is SamplingStrategy.WEIGHTED
                else ()
            ),
        )
        self._is_stream = settings.is_stream
        self._policy_quotas = POLICY_QUOTAS[self.policy](self.lengths, self.steps_per_epoch)
        self._order = _ORDERS[self.strategy](settings)
        self._is_started = False
        self._epoch = -1
        self._pass_idx = [0] * num_loaders
        self._batch_pos = [0] * num_loaders
        self._dropped = [False] * num_loaders
        quotas = self._order.plan(self._policy_quotas)
        self._reset_epoch_counters(quotas)
        self._order.begin_epoch(quotas)

    def _check_steps(self, steps_per_epoch: int | None) -> int | None:
        if self.policy is not EpochLengthPolicy.FIXED_NUM_STEPS:
            return steps_per_epoch
        if steps_per_epoch is None:
            raise SchedulingError(
                "EpochLengthPolicy.FIXED_NUM_STEPS needs steps_per_epoch (batches per epoch, >= 1)"
            )
        return check_int(steps_per_epoch, "steps_per_epoch", 1, "Give batches per epoch")

    def _reset_epoch_counters(self, quotas: list[int]) -> None:
        num_loaders = len(self.lengths)
        self._quotas = quotas
        self._virtual = [0] * num_loaders
        self._counts = [0] * num_loaders
        self._position = 0
        self._last_loader = -1
        self._num_active = num_loaders
        self._slots_left = sum(self._policy_quotas)

    # -- epochs ---------------------------------------------------------------------------

    def start_epoch(self, epoch: int) -> None:
        """Begin epoch ``epoch`` (0-based): reset per-epoch counters and move loaders on.

        Length-based policies start every loader that gave a batch at a fresh pass; with
        FIXED_NUM_STEPS positions carry over (loaders whose pass ran out without cycling get
        a fresh one), and a WEIGHTED cursor continues across the boundary.

        Args:
            epoch: the epoch number (recorded; the order depends only on the cursor).

        Raises:
            SchedulingError: negative epoch.
        """
        check_int(epoch, "epoch", 0, "Epochs are 0-based")
        for idx, position in enumerate(self._batch_pos):
            if self._dropped[idx] or (position > 0 and not self._is_stream):
                self._pass_idx[idx] += 1
                self._batch_pos[idx] = 0
        self._dropped = [False] * len(self.lengths)
        quotas = self._order.plan(self._policy_quotas)
        self._reset_epoch_counters(quotas)
        self._order.begin_epoch(quotas)
        self._epoch = epoch
        self._is_started = True

    def _require_started(self, method: str) -> None:
        if not self._is_started:
            raise SchedulingError(
                f"LoaderSchedule.{method}() was called before start_epoch(); call "
                "start_epoch(epoch) first, or load_state_dict() to resume"
            )

    # -- hot path ---------------------------------------------------------------------------

    def next_slot(self) -> Slot | None:
        """Decide which loader gives the next batch.

        Returns:
            The next :class:`Slot`, or None when the epoch is finished (and on every call
            after that until :meth:`start_epoch`).

        Raises:
            SchedulingError: start_epoch() was not called.
        """
        if not self._is_started:
            self._require_started("next_slot")
        order, dropped = self._order, self._dropped
        while self._slots_left > 0:
            idx = order.next_loader()
            if idx < 0:
                break
            self._position += 1
            self._virtual[idx] += 1
            if dropped[idx]:  # cycle=False and its pass ran out: its slot is skipped
                if not order.has_exact_quotas:
                    self._slots_left -= 1
                continue
            self._slots_left -= 1
            return self._hand_out(idx)
        self._last_loader = -1
        return None

    def _hand_out(self, idx: int) -> Slot:
        position = self._batch_pos[idx]
        length = self.lengths[idx]
        if length is not None and position >= length:  # pass ran out: cycle (cycle=True here)
            self._pass_idx[idx] += 1
            position = 0
        self._batch_pos[idx] = position + 1
        self._counts[idx] += 1
        self._last_loader = idx
        if length is not None and position + 1 >= length and not self.cycle:
            self._drop(idx)
        return Slot(idx, self._pass_idx[idx], position)

    def _drop(self, idx: int) -> None:
        if self._dropped[idx]:
            return
        self._dropped[idx] = True
        self._num_active -= 1
        if self._order.has_exact_quotas:
            self._slots_left -= self._quotas[idx] - self._virtual[idx]
        elif not self._num_active:
            self._slots_left = 0
        self._order.remove(idx)

    def mark_exhausted(self, loader_idx: int) -> Slot | None:
        """Report that an unknown-length loader ran dry at the slot just returned.

        With ``cycle=True`` (or when the pass had already run out in an earlier epoch) the
        loader starts a new pass and the replacement slot is returned. Otherwise the loader
        is dropped for the rest of the epoch and the next slot of another loader is returned.

        Args:
            loader_idx: the loader of the slot just returned.

        Returns:
            The slot to use instead, or None when the epoch is finished.

        Raises:
            SchedulingError: not the loader of the last slot, a loader with a known length,
                or a pass that gave no batch at all (an empty loader).
        """
        self._require_started("mark_exhausted")
        label = loader_label(loader_idx, self.names)
        if loader_idx != self._last_loader:
            raise SchedulingError(
                f"mark_exhausted({loader_idx}) must refer to the slot just returned, which "
                f"belongs to loader {self._last_loader}; call it right after next_slot()"
            )
        if self.lengths[loader_idx] is not None:
            raise SchedulingError(
                f"{label} has length {self.lengths[loader_idx]} but ran dry at batch "
                f"{self._batch_pos[loader_idx] - 1}; make its __len__ match what it yields "
                "or report its length as None (with EpochLengthPolicy.FIXED_NUM_STEPS)"
            )
        failed_batch = self._batch_pos[loader_idx] - 1
        if failed_batch == 0:
            raise SchedulingError(
                f"{label} gave no batch in pass {self._pass_idx[loader_idx]}: it is empty; "
                "remove it or give it data"
            )
        if self.cycle or self._counts[loader_idx] == 1:
            self._pass_idx[loader_idx] += 1
            self._batch_pos[loader_idx] = 1
            return Slot(loader_idx, self._pass_idx[loader_idx], 0)
        self._batch_pos[loader_idx] = failed_batch
        self._counts[loader_idx] -= 1
        self._last_loader = -1
        self._drop(loader_idx)
        return self.next_slot()

    # -- weights and reporting ------------------------------------------------------------------

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

    def _active_slots_left(self) -> int:
        if not self._order.has_exact_quotas:
            total = sum(self._policy_quotas)
            return total - self._position if self._num_active else 0
        return sum(
            quota - virtual
            for quota, virtual, gone in zip(self._quotas, self._virtual, self._dropped, strict=True)
            if not gone
        )

    @property
    def epoch(self) -> int:
        """The current epoch (-1 before the first start_epoch)."""
        return self._epoch

    def epoch_length(self) -> int | None:
        """Epoch length T: the number of virtual slots before any drop.

        Returns:
            T; always an int here, since unknown lengths require FIXED_NUM_STEPS.
        """
        return sum(self._policy_quotas)

    def quotas(self) -> list[int]:
        """Per-loader planned batches this epoch (before drops).

        Exact for every strategy with length-based policies. With FIXED_NUM_STEPS and WEIGHTED
        this is the Hamilton split of ``steps_per_epoch``; the actual counts may differ by the
        rounding carried over from earlier epochs (shares are exact over the run).
        """
        return list(self._quotas)

    def counts(self) -> list[int]:
        """Per-loader batches handed out so far this epoch."""
        return list(self._counts)

    def positions(self) -> list[tuple[int, int]]:
        """Per-loader ``(pass_idx, next batch_idx)``; a next index equal to the loader's
        length means the pass is used up (the next batch starts a new pass)."""
        return list(zip(self._pass_idx, self._batch_pos, strict=True))

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
            IS_STARTED: self._is_started,
            EPOCH: self._epoch,
            POSITION: self._position,
            LAST_LOADER: self._last_loader,
            QUOTAS: list(self._quotas),
            VIRTUAL: list(self._virtual),
            COUNTS: list(self._counts),
            DROPPED: list(self._dropped),
            PASS_IDX: list(self._pass_idx),
            BATCH_POS: list(self._batch_pos),
            ORDER: self._order.state_dict(),
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
        num_loaders = len(self.lengths)
        per_loader = {
            key: list(state[key]) for key in (QUOTAS, VIRTUAL, COUNTS, DROPPED, PASS_IDX, BATCH_POS)
        }
        for key, values in per_loader.items():
            if len(values) != num_loaders:
                raise SchedulingError(
                    f"loader schedule state has {len(values)} {key} entries for "
                    f"{num_loaders} loaders; the checkpoint belongs to another run"
                )
        order_state = state[ORDER]
        self._is_started = bool(state[IS_STARTED])
        self._epoch = int(state[EPOCH])
        self._quotas = [int(v) for v in per_loader[QUOTAS]]
        self._virtual = [int(v) for v in per_loader[VIRTUAL]]
        self._counts = [int(v) for v in per_loader[COUNTS]]
        self._dropped = [bool(v) for v in per_loader[DROPPED]]
        self._pass_idx = [int(v) for v in per_loader[PASS_IDX]]
        self._batch_pos = [int(v) for v in per_loader[BATCH_POS]]
        self._position = int(state[POSITION])
        self._last_loader = int(state[LAST_LOADER])
        self._num_active = self._dropped.count(False)
        self._order.load_state_dict(order_state, self._quotas, self._virtual, self._dropped)
        self._slots_left = self._active_slots_left()
