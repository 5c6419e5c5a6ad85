"""The batches of one pass of a map-style loader, computed by index arithmetic.

A pass's sample order is drawn from our own seeded generator (``sampler_indices``) for the
samplers we know, so it is a pure function of the pass's seed and no global RNG state is
consumed; ``PassBatches`` slices that order into batches, so opening a pass at batch k costs
one slice (no batch is loaded twice); ``PassIndexSampler`` is the batch sampler the stream's
DataLoader iterates, from any start batch. See NOTE [exact resume] in streams.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
)

from model_training_framework.trainer.data.seeds import derive_seed
from model_training_framework.trainer.data.worker_seeds import (
    SeededBatch,
    SeededIndex,
    with_seed,
)

__all__ = [
    "PassBatches",
    "PassIndexSampler",
    "own_generators_seeded",
    "sampler_indices",
    "set_sampler_epoch",
]


class PassIndexSampler:
    """The batch sampler handed to our DataLoader: yields the batches of one pass from a start.

    ``__iter__`` snapshots the current plan, so a live iterator is never changed under it.

    Args:
        is_prebatched: yield one item index per batch (a DataLoader with ``batch_size=None``)
            instead of a list of sample indices.
    """

    def __init__(self, *, is_prebatched: bool = False) -> None:
        self.batches: PassBatches | None = None
        self.start = 0
        self._is_prebatched = is_prebatched

    def __iter__(self) -> Iterator[Any]:
        batches, start = self.batches, self.start
        assert batches is not None, "a pass must be planned before iterating"
        if self._is_prebatched:
            fetch = batches.item
        else:  # without worker seeds a batch is its index list: no call in between
            fetch = batches.batch if batches.seeds_workers else batches.index_list
        return map(fetch, range(start, len(batches)))  # no generator frame per batch

    def __len__(self) -> int:
        return 0 if self.batches is None else len(self.batches) - self.start


class PassBatches:
    """The index batches of one pass, computed by arithmetic on one index tensor.

    Args:
        indices: the pass's sample order (None when ``explicit`` is given).
        batch_size: samples per batch.
        drop_last: drop a last, incomplete batch.
        seed: the pass's seed; a worker process reseeds its RNGs per batch from it.
        explicit: the index batches themselves, for batch samplers we cannot slice.
        seed_workers: attach per-batch worker seeds (only worker processes read them).
    """

    def __init__(
        self,
        indices: torch.Tensor | None,
        batch_size: int,
        drop_last: bool,
        seed: int,
        explicit: list[list[int]] | None = None,
        *,
        seed_workers: bool = True,
    ) -> None:
        # The order as an int64 memoryview: slicing it costs less than slicing the tensor or a
        # NumPy view (hot path: every batch), and a slice's bytes are what the data fingerprint
        # records, appended without a conversion.
        self._indices = (
            None
            if indices is None
            else memoryview(np.ascontiguousarray(indices.numpy(), dtype=np.int64))
        )
        self._explicit = explicit
        self._batch_size = batch_size
        self._seed = seed
        self._seed_workers = seed_workers
        if explicit is not None:
            self._len = len(explicit)
        else:
            assert self._indices is not None
            total = len(self._indices)
            self._len = total // batch_size if drop_last else math.ceil(total / batch_size)

    def __len__(self) -> int:
        return self._len

    def indices(self, k: int) -> Sequence[int]:
        """Sample indices of batch ``k``: an int64 memoryview (a list for explicit batches)."""
        if self._explicit is not None:
            return self._explicit[k]
        assert self._indices is not None
        return self._indices[k * self._batch_size : (k + 1) * self._batch_size]

    @property
    def seeds_workers(self) -> bool:
        """Whether batches carry per-batch seeds for worker processes."""
        return self._seed_workers

    def batch(self, k: int) -> list[int]:
        """Batch ``k`` for the DataLoader: a ``SeededBatch`` when worker processes will read
        its seed, else the index list itself (no copy; the fetch only reads it)."""
        indices = self.index_list(k)
        if not self._seed_workers:
            return indices
        return with_seed(SeededBatch, indices, derive_seed(self._seed, k))

    def item(self, k: int) -> int:
        """Batch ``k`` of a pre-batched dataset (one item per batch): the item's index."""
        index = int(self.index_list(k)[0])
        if not self._seed_workers:
            return index
        return with_seed(SeededIndex, index, derive_seed(self._seed, k))

    def index_list(self, k: int) -> list[int]:
        """The sample indices of batch ``k`` as a list."""
        if self._explicit is not None:
            return list(self._explicit[k])
        assert self._indices is not None
        return self._indices[k * self._batch_size : (k + 1) * self._batch_size].tolist()


def sampler_indices(sampler: Any, generator: torch.Generator, pass_idx: int) -> torch.Tensor:
    """The sample order of one pass, drawn from ``generator`` for the shuffling samplers we know."""
    if type(sampler) is SequentialSampler:
        return torch.arange(len(sampler.data_source))
    if type(sampler) is RandomSampler:
        n = len(sampler.data_source)
        if sampler.replacement:
            return torch.randint(n, (sampler.num_samples,), generator=generator)
        rounds = [
            torch.randperm(n, generator=generator) for _ in range(-(-sampler.num_samples // n))
        ]
        return torch.cat(rounds)[: sampler.num_samples]
    if type(sampler) is SubsetRandomSampler:
        order = torch.randperm(len(sampler.indices), generator=generator)
        return torch.as_tensor(list(sampler.indices))[order]
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(pass_idx)
        return torch.as_tensor(list(iter(sampler)), dtype=torch.long)
    # Any other sampler: run it with the global RNG forked and seeded for this pass.
    set_sampler_epoch(sampler, pass_idx)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]), own_generators_seeded([sampler], seed):
        torch.manual_seed(seed)
        return torch.as_tensor(list(iter(sampler)), dtype=torch.long)


@contextlib.contextmanager
def own_generators_seeded(samplers: Iterable[Any], seed: int) -> Iterator[None]:
    """Samplers that draw from their own ``generator`` (``WeightedRandomSampler(generator=g)``,
    bucketing batch samplers) draw from one seeded with ``seed`` while the block runs.

    Their generator's state moves on with every pass and is not in the checkpoint, so a resumed
    run would get other orders; the sampler's own generator is put back afterwards.
    """
    swapped = [s for s in samplers if isinstance(getattr(s, "generator", None), torch.Generator)]
    originals = [s.generator for s in swapped]
    for sampler in swapped:
        sampler.generator = torch.Generator().manual_seed(seed)
    try:
        yield
    finally:
        for sampler, original in zip(swapped, originals, strict=True):
            sampler.generator = original


def set_sampler_epoch(sampler: Any, pass_idx: int) -> None:
    """Tell a (distributed) sampler which pass comes, as ``DistributedSampler.set_epoch`` wants."""
    set_epoch = getattr(sampler, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(pass_idx)
