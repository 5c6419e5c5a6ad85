"""What a batch holds: how many samples (the weight of its metrics in running means)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["count_samples"]


def count_samples(batch: Any, fallback: int | None) -> int:
    """Leading dimension of the first tensor found in ``batch`` (else ``fallback`` or 1)."""
    stack = [batch]
    while stack:
        item = stack.pop(0)
        if isinstance(item, torch.Tensor):
            return int(item.shape[0]) if item.dim() else 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return fallback or 1
