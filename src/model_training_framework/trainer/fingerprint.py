"""Data-order fingerprint: a rolling hash of (loader, sample indices) per training micro-step.

Two runs that saw the same batches in the same order end with the same fingerprint, so a resumed
run can prove it continued exactly where the interrupted one stopped.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError

__all__ = ["DataFingerprint"]


class DataFingerprint:
    """Rolling BLAKE2b over the sequence of batches a run consumed."""

    def __init__(self) -> None:
        self._digest = bytes(16)

    def update(
        self, loader_idx: int, pass_idx: int, batch_idx: int, indices: Sequence[int] | None
    ) -> None:
        """Fold one batch in; ``indices`` are its dataset indices (None for iterable datasets)."""
        payload = array("q", (loader_idx, pass_idx, batch_idx))
        if indices is not None:
            payload.extend(indices)
        self._digest = hashlib.blake2b(self._digest + payload.tobytes(), digest_size=16).digest()

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
