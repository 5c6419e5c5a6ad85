"""Moving batches to the training device."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["move_to_device"]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors to ``device``, also inside tuples, named tuples, lists, dicts and dataclasses.

    Pinned tensors are copied with ``non_blocking=True``; anything that is not a tensor or a
    container of tensors is returned unchanged.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=batch.is_pinned())
    if isinstance(batch, dict):
        return type(batch)((key, move_to_device(value, device)) for key, value in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            field.name: move_to_device(getattr(batch, field.name), device)
            for field in dataclasses.fields(batch)
            if field.init
        }
        return dataclasses.replace(batch, **changes)
    return batch
