"""CPU copies of a checkpoint payload, for asynchronous saves (buffers reused between saves)."""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from model_training_framework.trainer.state.payload_types import MAPPING_TYPES, SEQUENCE_TYPES

__all__ = ["CpuSnapshot"]


class CpuSnapshot:
    """Copies payloads to CPU memory, reusing the buffers of the previous copy.

    The copy is independent of the original, so training may keep changing parameters and
    optimizer state while a background thread writes the copy. Identical tensor objects stay
    identical in the copy (tied weights are saved once).

    # NOTE [snapshot buffers]: allocating fresh memory for every snapshot costs more than the
    # copy itself (page faults: ~3x a copy into memory already touched), so each tensor is
    # copied into the buffer kept from the previous snapshot at the same key path when shape,
    # dtype and layout match. The caller must not take a new snapshot while the previous one
    # is still being written (CheckpointManager waits for the in-flight save first). The
    # price is one CPU copy of the payload kept between saves; buffers for CUDA tensors are
    # pinned, which speeds up the device-to-host copy.

    Example:
        >>> snapshot = CpuSnapshot()
        >>> source = {"w": torch.zeros(2)}
        >>> copy = snapshot.take(source)
        >>> _ = source["w"].add_(1.0)
        >>> copy["w"].tolist()
        [0.0, 0.0]
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, torch.Tensor] = {}

    def take(self, value: Any) -> Any:
        """Return a copy of ``value`` (types as :func:`check_payload_types` accepts).

        Args:
            value: The payload.

        Returns:
            The copy; its tensors are CPU tensors owned by this snapshot until the next call.
        """
        previous, self._buffers = self._buffers, {}
        return self._copy(value, (), previous, {})

    def _copy(self, value: Any, key_path: tuple, previous: dict, memo: dict[int, Any]) -> Any:
        if isinstance(value, torch.Tensor):
            if id(value) not in memo:
                memo[id(value)] = self._copy_tensor(value.detach(), key_path, previous)
            return memo[id(value)]
        kind = type(value)
        if kind in MAPPING_TYPES:
            return kind(
                (key, self._copy(item, (*key_path, key), previous, memo))
                for key, item in value.items()
            )
        if kind in SEQUENCE_TYPES:
            return kind(
                self._copy(item, (*key_path, idx), previous, memo) for idx, item in enumerate(value)
            )
        return value  # plain leaves are immutable

    def _copy_tensor(self, tensor: torch.Tensor, key_path: tuple, previous: dict) -> torch.Tensor:
        if tensor.layout != torch.strided:
            return tensor.to("cpu", copy=True)
        buffer = previous.get(key_path)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            is_pinned = tensor.device.type == "cuda"
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=is_pinned)
        if tensor.device.type == "cpu" and tensor.is_contiguous() and tensor.numel() > 0:
            # NOTE [single-threaded snapshot copy]: Tensor.copy_ splits large copies over
            # torch's intra-op threads; on an oversubscribed host (dataloader workers, several
            # ranks per node) every copy then waits for a descheduled thread, which made a 200 MB
            # snapshot take ~30x longer in bench/async_checkpoint.py. A plain memmove is
            # bandwidth-bound on one core anyway, and ctypes releases the GIL while it runs.
            ctypes.memmove(
                buffer.data_ptr(), tensor.data_ptr(), tensor.numel() * tensor.element_size()
            )
        else:
            buffer.copy_(tensor)
        self._buffers[key_path] = buffer
        return buffer
