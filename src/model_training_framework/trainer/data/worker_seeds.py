"""Per-batch RNG seeds for DataLoader worker processes (NOTE [exact resume] in streams.py).

A batch handed to a worker carries its seed: ``SeededBatch`` (a list of sample indices) or
``SeededIndex`` (the item index of a pre-batched dataset), both kept when pickled to the worker.
``WorkerSeededDataset`` wraps the user's map-style dataset and, inside a worker process only,
reseeds Python, NumPy and torch from that seed before it fetches the batch, so random
augmentations depend on ``(base_seed, loader_idx, pass_idx, batch_idx)`` and not on where a run
was resumed. In the main process the dataset is read as it is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["SeededBatch", "SeededIndex", "WorkerSeededDataset", "with_seed"]


class SeededBatch(list):
    """A list of sample indices that carries the seed its worker uses for this batch."""

    __slots__ = ("seed",)

    def __reduce__(self):  # keep the seed when the batch is sent to a worker process
        return (with_seed, (SeededBatch, list(self), self.seed))


class SeededIndex(int):
    """The index of a pre-batched item, carrying the seed its worker uses for this batch."""

    seed: int

    def __reduce__(self):  # keep the seed when the index is sent to a worker process
        return (with_seed, (SeededIndex, int(self), self.seed))


def with_seed(cls: type, value: Any, seed: int) -> Any:
    """``cls(value)`` carrying ``seed``: how batches are made, and rebuilt in the worker."""
    seeded = cls(value)
    seeded.seed = seed
    return seeded


def _reseed_in_worker(seed: int | None) -> None:
    """In a worker process, seed Python, NumPy and torch with the batch's ``seed``."""
    if seed is not None and torch.utils.data.get_worker_info() is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


class WorkerSeededDataset(Dataset):
    """Map-style wrapper: in a worker process, reseed all RNGs per batch before fetching it."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        getitems = getattr(dataset, "__getitems__", None)
        self._getitems = getitems if callable(getitems) else None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: Any) -> Any:
        # only pre-batched items come here (one whole batch per index)
        _reseed_in_worker(getattr(index, "seed", None))
        return self.dataset[int(index)]

    def __getitems__(self, indices: Sequence[Any]) -> list:
        _reseed_in_worker(getattr(indices, "seed", None))
        if self._getitems is not None:
            return self._getitems(list(indices))
        return [self.dataset[i] for i in indices]
