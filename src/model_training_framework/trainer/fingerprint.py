"""Data-order fingerprint: a rolling hash of (loader, sample indices) per training micro-step.

Two runs that saw the same batches in the same order end with the same fingerprint, so a resumed
run can prove it continued exactly where the interrupted one stopped.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError

__all__ = ["DataFingerprint", "NullFingerprint"]

# Previous digest, then loader, pass and batch index as native int64 (as array("q") packs them).
_HEAD = struct.Struct("=16s3q")


class DataFingerprint:
    """Rolling BLAKE2b over the sequence of batches a run consumed."""

    def __init__(self) -> None:
        self._digest = bytes(16)

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Fold one batch in; ``indices`` are its dataset indices (None for iterable datasets)."""
        digest = hashlib.blake2b(
            _HEAD.pack(self._digest, loader_idx, pass_idx, batch_idx), digest_size=16
        )
        if indices is not None:
            digest.update(array("q", indices))
        self._digest = digest.digest()

    @property
    def hexdigest(self) -> str:
        return self._digest.hex()

    def state_dict(self) -> dict[str, Any]:
        return {"digest": self.hexdigest}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._digest = bytes.fromhex(state["digest"])
        except KeyError as err:
            raise CheckpointError(f"checkpoint fingerprint state lacks {err}") from err


class NullFingerprint(DataFingerprint):
    """``fault_tolerance.record_data_fingerprint: false``: nothing is hashed."""

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Ignore the batch."""
