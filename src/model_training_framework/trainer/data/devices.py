"""Moving batches to the training device.

NOTE [device prefetch]: on CUDA each training batch is copied from pinned host memory with
``non_blocking=True`` on a side stream, and the compute stream waits for that copy only when the
batch is used (``wait_stream``; ``record_stream`` tells the caching allocator that the compute
stream uses the memory). The batch is fetched right after the previous step's boundary
decisions; since the loop never synchronises, the host is normally a step ahead of the GPU, so
the copy runs on the copy engine while the previous step's kernels still execute. The batch is
not fetched any earlier on purpose: a checkpoint may be written at that boundary, and a batch
taken from a loader before it (above all from an iterable dataset, whose state cannot be
rewound) would be recorded as consumed. Exact resume and the data fingerprint are therefore
untouched. A pageable (unpinned) tensor is pinned first: a pageable copy would make the host
wait until the GPU has finished all queued work. ``pin_memory=True`` on a DataLoader does that
pinning in the loader's own thread instead. On CPU nothing happens at all (the batch is used as
it is).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "BatchMover",
    "CudaBatchMover",
    "DeviceBatchMover",
    "build_batch_mover",
    "move_to_device",
]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors to ``device``, also inside tuples, named tuples, lists, dicts and dataclasses.

    Pinned tensors are copied with ``non_blocking=True``; anything that is not a tensor or a
    container of tensors is returned unchanged.
    """
    return map_tensors(batch, lambda t: t.to(device, non_blocking=t.is_pinned()))


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``batch`` with ``fn`` applied to every tensor in it (nested containers rebuilt)."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return type(batch)((key, map_tensors(value, fn)) for key, value in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(map_tensors(value, fn) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(value, fn) for value in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            field.name: map_tensors(getattr(batch, field.name), fn)
            for field in dataclasses.fields(batch)
            if field.init
        }
        return dataclasses.replace(batch, **changes)
    return batch


class BatchMover:
    """Training on the CPU: batches stay where they are (no copy, no thread)."""

    def __call__(self, batch: Any) -> Any:
        """``batch`` on the training device."""
        return batch


class DeviceBatchMover(BatchMover):
    """A non-CUDA accelerator: a plain ``move_to_device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, batch: Any) -> Any:
        return move_to_device(batch, self.device)


class CudaBatchMover(BatchMover):
    """Copies batches on a side CUDA stream (see NOTE [device prefetch])."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._stream = torch.cuda.Stream(device)

    def __call__(self, batch: Any) -> Any:
        moved: list[torch.Tensor] = []

        def copy(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.device.type == "cpu" and not tensor.is_pinned():
                tensor = tensor.pin_memory()
            out = tensor.to(self.device, non_blocking=True)
            if out is not tensor:
                moved.append(out)
            return out

        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._stream):
            batch = map_tensors(batch, copy)
        if moved:
            compute.wait_stream(self._stream)
            for tensor in moved:
                tensor.record_stream(compute)
        return batch


def build_batch_mover(device: torch.device) -> BatchMover:
    """The mover for ``device``: nothing on CPU, a side-stream copy on CUDA."""
    if device.type == "cpu":
        return BatchMover()
    if device.type == "cuda":
        return CudaBatchMover(device)
    return DeviceBatchMover(device)
