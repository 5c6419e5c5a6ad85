"""Data-order fingerprint: a rolling hash of (loader, sample indices) per training micro-step.

Two runs that saw the same batches in the same order end with the same fingerprint, so a resumed
run can prove it continued exactly where the interrupted one stopped.

Records are appended to a buffer and folded into the BLAKE2b digest every ``FOLD_EVERY`` batches
(hashing per batch cost more than the rest of the bookkeeping together). The fold points depend
only on the batch count and the buffer is part of the state, so a resumed run folds at the same
points as an uninterrupted one and the two end with the same fingerprint.
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
    """Rolling BLAKE2b over the sequence of batches a run consumed."""

    def __init__(self) -> None:
        self._digest = bytes(_DIGEST_BYTES)
        self._pending = bytearray()
        self._count = 0

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Record one batch; ``indices`` are its dataset indices (None for iterable datasets)."""
        pending = self._pending
        if indices is None:
            pending += _RECORD.pack(loader_idx, pass_idx, batch_idx, -1)
        else:
            pending += _RECORD.pack(loader_idx, pass_idx, batch_idx, len(indices))
            # an int64 NumPy view is appended as is (same bytes as array("q", ...), no copy)
            pending += indices.data if isinstance(indices, np.ndarray) else array("q", indices)
        self._count += 1
        if self._count == FOLD_EVERY:
            self._digest = self._folded()
            pending.clear()
            self._count = 0

    def _folded(self) -> bytes:
        return hashlib.blake2b(self._digest + self._pending, digest_size=_DIGEST_BYTES).digest()

    @property
    def hexdigest(self) -> str:
        """The fingerprint of every batch recorded so far."""
        return self._folded().hex()

    def state_dict(self) -> dict[str, Any]:
        return {"digest": self._digest.hex(), "pending": self._pending.hex(), "count": self._count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._digest = bytes.fromhex(state["digest"])
            self._pending = bytearray.fromhex(state["pending"])
            self._count = int(state["count"])
        except KeyError as err:
            raise CheckpointError(f"checkpoint fingerprint state lacks {err}") from err


class NullFingerprint(DataFingerprint):
    """``fault_tolerance.record_data_fingerprint: false``: nothing is hashed."""

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Ignore the batch."""
