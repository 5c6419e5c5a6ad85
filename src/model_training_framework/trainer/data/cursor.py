"""PURE: the cursor of a loader schedule: which virtual slot comes next, and where each loader is.

:class:`ScheduleCursor` is given the lengths, a ready order (:mod:`.orders`, :mod:`.weighted`)
and the epoch length policy's quotas, and hands out one :class:`Slot` per batch. Its state
is a few integers per loader: the epoch's counters (quotas, virtual slots, batches handed out),
each loader's ``(pass_idx, batch_pos)``, and which loaders were dropped (``cycle=False``). It
owns the per-batch hot path (``next_slot``), the epoch boundary, loaders of unknown length
that run dry (``mark_exhausted``), and the cursor's part of the checkpoint.
:class:`~.schedule.LoaderSchedule`, the public entry point, is a cursor built from checked
arguments (strategy, policy, weights); it adds weight changes and versions the checkpoint
against its configuration. The vocabulary (*quota*, *virtual slot*, *position*) is explained
in :mod:`.schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from model_training_framework.errors import SchedulingError
from model_training_framework.trainer.data.inputs import check_int, loader_label
from model_training_framework.trainer.data.orders import Order

__all__ = ["ScheduleCursor", "Slot"]

# Cursor state keys (strict loading: a missing key means a corrupt or foreign checkpoint).
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


class ScheduleCursor:
    """Hands out the slots of a ready order and tracks every loader's position.

    Args:
        lengths: each loader's length in batches (checked); ``None`` for an unknown length.
        names: loader names (checked), used in error messages; or None.
        cycle: when a loader's quota exceeds what it has left, start a new pass (True) or
            drop its remaining slots so that the epoch gets shorter (False).
        order: the order of virtual slots (one per strategy).
        policy_quotas: each loader's quota per epoch under the epoch length policy.
        is_stream: FIXED_NUM_STEPS: positions carry over between epochs.
    """

    def __init__(
        self,
        lengths: tuple[int | None, ...],
        names: tuple[str, ...] | None,
        cycle: bool,
        order: Order,
        policy_quotas: list[int],
        is_stream: bool,
    ) -> None:
        num_loaders = len(lengths)
        self.lengths = lengths
        self.names = names
        self.cycle = cycle
        self._is_stream = is_stream
        self._policy_quotas = policy_quotas
        self._order = order
        self._is_started = False
        self._epoch = -1
        self._pass_idx = [0] * num_loaders
        self._batch_pos = [0] * num_loaders
        self._dropped = [False] * num_loaders
        quotas = self._order.plan(self._policy_quotas)
        self._reset_epoch_counters(quotas)
        self._order.begin_epoch(quotas)

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
            # hand out the loader's next batch (inlined: this runs once per batch)
            position = self._batch_pos[idx]
            length = self.lengths[idx]
            if length is not None and position >= length:  # pass ran out: cycle (cycle=True)
                self._pass_idx[idx] += 1
                position = 0
            self._batch_pos[idx] = position + 1
            self._counts[idx] += 1
            self._last_loader = idx
            if length is not None and position + 1 >= length and not self.cycle:
                self._drop(idx)
            return Slot(idx, self._pass_idx[idx], position)
        self._last_loader = -1
        return None

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

    # -- reporting ----------------------------------------------------------------------------

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

    def _active_slots_left(self) -> int:
        if not self._order.has_exact_quotas:
            total = sum(self._policy_quotas)
            return total - self._position if self._num_active else 0
        return sum(
            quota - virtual
            for quota, virtual, gone in zip(self._quotas, self._virtual, self._dropped, strict=True)
            if not gone
        )

    # -- state --------------------------------------------------------------------------------

    def _cursor_state(self) -> dict[str, Any]:
        """The cursor's entries of the schedule's state dict."""
        return {
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

    def _load_cursor(self, state: Mapping[str, Any]) -> None:
        """Restore the entries :meth:`_cursor_state` wrote.

        Raises:
            KeyError: a missing key (the caller says which checkpoint is at fault).
            SchedulingError: per-loader lists of another length than the loaders.
        """
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
