"""Data-order fingerprint: a rolling hash of (loader, sample indices) per training micro-step.

Two runs that saw the same batches in the same order end with the same fingerprint, so a resumed
run can prove it continued exactly where the interrupted one stopped.

Records are appended to a buffer and folded into the BLAKE2b digest every ``FOLD_EVERY`` batches
(hashing per batch cost more than the rest of the bookkeeping together). The fold points depend
only on the batch count and the buffer is part of the state, so a resumed run folds at the same
points as an uninterrupted one and the two end with the same fingerprint. A batch's record is
written to the buffer later, in order (NOTE [deferred records]).
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from model_training_framework.errors import CheckpointError

__all__ = ["FOLD_EVERY", "DataFingerprint", "NullFingerprint"]

FOLD_EVERY = 256
# loader, pass and batch index, and the number of sample indices (-1: iterable dataset)
_RECORD = struct.Struct("=4q")
_DIGEST_BYTES = 16


class DataFingerprint:
    """Rolling BLAKE2b over the sequence of batches a run consumed.

    NOTE [deferred records]: ``update`` only keeps the batch's record (one list append per
    batch, the cheapest step work); records are turned into bytes and folded in order every
    ``FOLD_EVERY`` updates and whenever the fingerprint or its state is read. The fold points
    are still every ``FOLD_EVERY`` batches of the run, so the digest is the same as when each
    record was written at once. The indices a record keeps are read then: they must not
    change after ``update`` (a stream's indices are slices of its pass's fixed order). The
    training step appends to :attr:`records` itself and calls :meth:`write_records` when it
    holds ``FOLD_EVERY`` (what ``update`` does, without a Python call per batch).
    """

    def __init__(self) -> None:
        self._digest = bytes(_DIGEST_BYTES)
        self._pending = bytearray()  # the records since the last fold, as bytes
        self._count = 0  # records in _pending
        self._records: list[tuple[int, int, int, Sequence[int] | None]] = []  # not in bytes yet

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Record one batch; ``indices`` are its dataset indices (None for iterable datasets)."""
        records = self._records
        records.append((loader_idx, pass_idx, batch_idx, indices))
        if len(records) >= FOLD_EVERY:
            self.write_records()

    @property
    def records(self) -> list[tuple[int, int, int, Sequence[int] | None]]:
        """The kept ``(loader_idx, pass_idx, batch_idx, indices)`` records not written yet (the
        same list for the fingerprint's lifetime; see NOTE [deferred records])."""
        return self._records

    def write_records(self) -> None:
        """Append the kept records to the pending bytes, folding every ``FOLD_EVERY`` batches."""
        pending, count, pack = self._pending, self._count, _RECORD.pack
        for loader_idx, pass_idx, batch_idx, indices in self._records:
            if indices is None:
                pending += pack(loader_idx, pass_idx, batch_idx, -1)
            else:
                pending += pack(loader_idx, pass_idx, batch_idx, len(indices))
                # an int64 memoryview (a stream's batch) or NumPy array is appended as is: the
                # same bytes as array("q", ...), without a conversion
                if type(indices) is memoryview:
                    pending += indices
                elif isinstance(indices, np.ndarray):
                    pending += indices.data
                else:
                    pending += array("q", indices)
            count += 1
            if count == FOLD_EVERY:
                self._digest = self._folded()
                pending.clear()
                count = 0
        self._count = count
        self._records.clear()

    def _folded(self) -> bytes:
        return hashlib.blake2b(self._digest + self._pending, digest_size=_DIGEST_BYTES).digest()

    @property
    def hexdigest(self) -> str:
        """The fingerprint of every batch recorded so far."""
        self.write_records()
        return self._folded().hex()

    def state_dict(self) -> dict[str, Any]:
        self.write_records()
        return {"digest": self._digest.hex(), "pending": self._pending.hex(), "count": self._count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._digest = bytes.fromhex(state["digest"])
            self._pending = bytearray.fromhex(state["pending"])
            self._count = int(state["count"])
            self._records.clear()
        except KeyError as err:
            raise CheckpointError(f"checkpoint fingerprint state lacks {err}") from err


class NullFingerprint(DataFingerprint):
    """``fault_tolerance.record_data_fingerprint: false``: nothing is hashed."""

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Ignore the batch."""

    def write_records(self) -> None:
        """Drop records appended to :attr:`records` (nothing is hashed)."""
        self._records.clear()
