"""One pass over one user DataLoader, opened at any (pass, batch) position without replay.

NOTE [exact resume]: the loader schedule (schedule.py) decides which loader gives the next batch
and at which (pass_idx, batch_idx). A ``LoaderStream`` turns that position into data. For
map-style datasets the order of sample indices of a pass is a pure function of
``(base_seed, loader_idx, pass_idx)``: we draw the permutation from our own generator instead of
the global RNG, so resuming at batch k only slices the index list (no batch is loaded twice) and
no global RNG state is consumed by opening a loader. Inside worker processes every batch reseeds
Python, NumPy and torch from ``(base_seed, loader_idx, pass_idx, batch_idx)`` so random
augmentations do not depend on where a run was resumed. Iterable datasets take part through the
``state_dict()``/``load_state_dict()`` protocol (torchdata's ``StatefulDataLoader`` as is).
A pre-batched map-style dataset (``DataLoader(dataset, batch_size=None)``) returns a whole batch
per item: its item order is planned the same way, one item per batch, and the item's index is
the position (and what the data fingerprint records).

This module owns the stream: opening a loader at a position, fetching, and the stream's resume
state. A pass's index arithmetic lives in ``pass_plan.py``, the per-batch worker seeds in
``worker_seeds.py``.

NOTE [direct fetch]: ``DataLoader``'s ``__next__`` wraps each batch in a torch profiler range
that costs about 8 us on the CPU, more than the rest of the framework's work per batch. For a
map-style dataset read in this process (``num_workers=0``: the stream's own DataLoader, never a
user subclass) the stream reads the next batch from the iterator's fetch directly: the same
batch, sampler, collate and pinning. While the torch profiler records, the stream calls
``next`` as usual, so traces keep the DataLoader's range.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.utils.data.dataloader as _dataloader
from torch.utils.data import BatchSampler, DataLoader, IterableDataset

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.data.batches import count_samples
from model_training_framework.trainer.data.pass_plan import (
    PassBatches,
    PassIndexSampler,
    own_generators_seeded,
    sampler_indices,
    set_sampler_epoch,
)
from model_training_framework.trainer.data.seeds import derive_seed
from model_training_framework.trainer.data.user_loaders import is_stateful, stop_workers
from model_training_framework.trainer.data.worker_seeds import WorkerSeededDataset
from model_training_framework.trainer.torch_profiler import profiler_records

__all__ = ["LoaderStream", "build_streams"]

logger = logging.getLogger(__name__)

# NOTE [direct fetch] relies on two private torch names (this one and the one behind
# profiler_records); without either, batches come by next().
_SINGLE_PROCESS_ITER = getattr(_dataloader, "_SingleProcessDataLoaderIter", None)

_PASS = "pass_idx"
_NEXT_BATCH = "next_batch_idx"
_ITERABLE_STATE = "iterable_state"
_SOURCE_ENDED = "source_ended"

# NOTE [ended source]: DataLoader reads an IterableDataset item by item. When the items end in
# the middle of a batch, it returns the short batch and remembers that the dataset ended
# (its fetcher's private ``ended`` flag): only the next fetch raises StopIteration. The
# dataset itself has already run past its end (a generator's code after its loop ran, often
# moving the dataset to its next pass), so its state_dict() no longer says that the trainer's
# pass still owes a StopIteration. The stream saves that flag next to the dataset's state, and
# a resumed stream opened at that position ends the pass at its first fetch, as the live
# iterator would have, instead of reading the dataset's next pass as the rest of this one.
# Without the private flag (another torch), nothing is saved and resuming works as before.


def _source_ended(iterator: Iterator[Any] | None) -> bool:
    """Whether a single-process DataLoader iterator already saw its IterableDataset end
    (NOTE [ended source]); False when torch does not say."""
    fetcher = getattr(iterator, "_dataset_fetcher", None)
    return getattr(fetcher, "ended", False) is True


class LoaderStream:
    """Batches of one user DataLoader at positions chosen by the loader schedule.

    Args:
        loader: the user's DataLoader (map-style or iterable dataset).
        loader_idx: position in the list given to ``fit``.
        name: the loader's configured name.
        base_seed: the run's data seed; with it the sample order is reproducible.
        require_resumable: refuse iterable loaders without ``state_dict``/``load_state_dict``.

    Raises:
        ValueError: an iterable loader without the resume protocol when ``require_resumable``.
    """

    def __init__(
        self,
        loader: DataLoader,
        loader_idx: int,
        name: str,
        base_seed: int,
        *,
        require_resumable: bool = True,
    ) -> None:
        self.loader = loader
        self.loader_idx = loader_idx
        self.name = name
        self._base_seed = base_seed
        self._is_iterable = isinstance(loader.dataset, IterableDataset)
        # batch_size=None: every item of the dataset is a whole batch
        self._is_prebatched = loader.batch_sampler is None
        self._pass_idx = -1
        self._next_batch = 0
        self._iterator: Iterator[Any] | None = None
        self._reads_directly = False  # NOTE [direct fetch]
        self._batches: PassBatches | None = None
        self._pending_iterable_state: Any = None
        # where a restored pass had already ended (NOTE [ended source]), else None
        self._ended_at: tuple[int, int] | None = None
        # the state restored and not yet opened: what a checkpoint saves until the next fetch
        self._restored: dict[str, Any] | None = None
        self._stateful_source: Any = None  # what holds an iterable loader's resume state
        self._generator = torch.Generator()
        if self._is_iterable:
            self._check_iterable_protocol(require_resumable)
            self._owned = loader
            self._index_sampler = None
        else:
            self._index_sampler = PassIndexSampler(is_prebatched=self._is_prebatched)
            self._owned = self._build_loader(loader)

    # ------------------------------------------------------------------ construction
    def _check_iterable_protocol(self, require_resumable: bool) -> None:
        if is_stateful(self.loader):
            self._stateful_source = self.loader
        elif is_stateful(self.loader.dataset) and self.loader.num_workers == 0:
            self._stateful_source = self.loader.dataset
        elif require_resumable:
            raise ValueError(
                f"train loader '{self.name}' (index {self.loader_idx}) wraps an IterableDataset "
                "without state_dict()/load_state_dict(), so it cannot resume exactly. Give the "
                "dataset that protocol (with num_workers=0), use torchdata's StatefulDataLoader, "
                "or set fault_tolerance.require_resumable_iterables=False to restart it from its "
                "beginning on resume"
            )
        # Opening an iterable loader must not consume the global torch RNG (exact resume).
        if getattr(self.loader, "generator", None) is None:
            self.loader.generator = self._generator

    def _build_loader(self, loader: DataLoader) -> DataLoader:
        kwargs: dict[str, Any] = {
            "num_workers": loader.num_workers,
            "collate_fn": loader.collate_fn,
            "pin_memory": loader.pin_memory,
            "timeout": loader.timeout,
            "worker_init_fn": loader.worker_init_fn,
            "generator": self._generator,
            "persistent_workers": loader.persistent_workers,
            "pin_memory_device": loader.pin_memory_device,
        }
        if loader.num_workers > 0:
            kwargs["prefetch_factor"] = loader.prefetch_factor
            kwargs["multiprocessing_context"] = loader.multiprocessing_context
        # Only worker processes reseed per batch; in this process the dataset is read as it is.
        dataset = WorkerSeededDataset(loader.dataset) if loader.num_workers > 0 else loader.dataset
        if self._is_prebatched:
            return DataLoader(
                dataset,
                batch_size=None,
                sampler=self._index_sampler,
                **kwargs,
            )
        return DataLoader(dataset, batch_sampler=self._index_sampler, **kwargs)

    # ------------------------------------------------------------------ planning a pass
    def _pass_seed(self, pass_idx: int) -> int:
        return derive_seed(self._base_seed, self.loader_idx, pass_idx)

    def _plan_pass(self, pass_idx: int) -> PassBatches:
        seed = self._pass_seed(pass_idx)
        self._generator.manual_seed(seed)
        batch_sampler = self.loader.batch_sampler
        if self._is_prebatched:  # one item per batch, in the order of the loader's sampler
            indices = sampler_indices(self.loader.sampler, self._generator, pass_idx)
            return PassBatches(indices, 1, False, seed, seed_workers=self.loader.num_workers > 0)
        if type(batch_sampler) is BatchSampler:
            indices = sampler_indices(batch_sampler.sampler, self._generator, pass_idx)
            return PassBatches(
                indices,
                batch_sampler.batch_size,
                batch_sampler.drop_last,
                seed,
                seed_workers=self.loader.num_workers > 0,
            )
        inner_sampler = getattr(batch_sampler, "sampler", None)
        set_sampler_epoch(batch_sampler, pass_idx)
        set_sampler_epoch(inner_sampler, pass_idx)
        with (
            torch.random.fork_rng(devices=[]),
            own_generators_seeded([batch_sampler, inner_sampler], seed),
        ):
            torch.manual_seed(seed)
            explicit = [list(b) for b in batch_sampler]
        return PassBatches(
            None, 1, False, seed, explicit=explicit, seed_workers=self.loader.num_workers > 0
        )

    def _open(self, pass_idx: int, batch_idx: int) -> None:
        self._restored = None
        if self._is_iterable:
            self._open_iterable(pass_idx, batch_idx)
        else:
            self._batches = self._plan_pass(pass_idx)
            assert self._index_sampler is not None
            self._index_sampler.batches = self._batches
            self._index_sampler.start = batch_idx
            self._generator.manual_seed(derive_seed(self._pass_seed(pass_idx), "workers"))
            self._iterator = iter(self._owned)
            self._reads_directly = type(self._iterator) is _SINGLE_PROCESS_ITER and hasattr(
                self._iterator, "_next_data"
            )
        self._pass_idx, self._next_batch = pass_idx, batch_idx

    def _open_iterable(self, pass_idx: int, batch_idx: int) -> None:
        self._generator.manual_seed(self._pass_seed(pass_idx))
        if self._pending_iterable_state is not None and self._stateful_source is not None:
            self._stateful_source.load_state_dict(self._pending_iterable_state)
            self._pending_iterable_state = None
            ended_at, self._ended_at = self._ended_at, None
            if ended_at == (pass_idx, batch_idx):  # NOTE [ended source]
                self._iterator = iter(())
                return
        elif batch_idx > 0:
            logger.warning(
                "train loader '%s' has no resume protocol: restarting it from its beginning "
                "instead of batch %d",
                self.name,
                batch_idx,
            )
        self._iterator = iter(self._owned)

    # ------------------------------------------------------------------ fetching
    def fetch(self, pass_idx: int, batch_idx: int) -> Any:
        """Return the batch at ``(pass_idx, batch_idx)``.

        Raises:
            StopIteration: an iterable loader ran dry (the schedule decides what comes next).
        """
        if pass_idx != self._pass_idx or batch_idx != self._next_batch or self._iterator is None:
            self._open(pass_idx, batch_idx)
        iterator = self._iterator
        assert iterator is not None
        if self._reads_directly and not profiler_records():
            batch = iterator._next_data()  # NOTE [direct fetch]
        else:
            batch = next(iterator)
        self._next_batch = batch_idx + 1
        return batch

    def sample_indices(self, pass_idx: int, batch_idx: int) -> Sequence[int] | None:
        """Dataset indices of a fetched map-style batch (None for iterable datasets): an int64
        memoryview, or a list for batch samplers we cannot slice."""
        if self._batches is None or pass_idx != self._pass_idx:
            return None
        return self._batches.indices(batch_idx)

    @property
    def counts_indices(self) -> bool:
        """Whether a batch's sample count is the length of its sample indices."""
        return not self._is_prebatched

    @property
    def is_iterable(self) -> bool:
        """Whether the loader wraps an IterableDataset (its pass ends when it runs dry)."""
        return self._is_iterable

    def batch_size_hint(self) -> int | None:
        """The configured batch size, used to count samples without inspecting batches."""
        return getattr(self.loader, "batch_size", None)

    def num_samples(self, batch: Any, indices: Sequence[int] | None) -> int:
        """Samples in a fetched batch: its sample indices, else the batch's leading dimension
        (pre-batched items and iterable datasets), else the batch size."""
        if indices is not None and not self._is_prebatched:
            return len(indices)
        return count_samples(batch, self.batch_size_hint())

    def rebase_seed(self, base_seed: int) -> None:
        """Use the run's data seed from a checkpoint (the sample order derives from it)."""
        self._base_seed = base_seed

    # ------------------------------------------------------------------ state protocol
    def state_dict(self) -> dict[str, Any]:
        """Position bookkeeping; for iterable loaders also their own resume state. Until a
        restored stream is read again, the state it was restored to (an iterable dataset only
        loads it at that read)."""
        if self._restored is not None:
            return dict(self._restored)
        state: dict[str, Any] = {_PASS: self._pass_idx, _NEXT_BATCH: self._next_batch}
        if self._stateful_source is not None:
            state[_ITERABLE_STATE] = self._stateful_source.state_dict()
        if self._stateful_source is not None and self._stateful_source is not self.loader:
            state[_SOURCE_ENDED] = _source_ended(self._iterator)  # NOTE [ended source]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore; the next ``fetch`` opens the loader where the schedule says."""
        try:
            self._pass_idx = -1  # force a re-open at the first fetch
            self._next_batch = int(state[_NEXT_BATCH])
            if self._stateful_source is not None:
                self._pending_iterable_state = state[_ITERABLE_STATE]
            # absent from checkpoints written before NOTE [ended source]: not ended
            ended = bool(state.get(_SOURCE_ENDED, False))
            self._ended_at = (int(state[_PASS]), self._next_batch) if ended else None
            self._restored = dict(state)
        except KeyError as err:
            raise CheckpointError(
                f"checkpoint has no loader state key {err} for loader '{self.name}'"
            ) from err

    def close(self) -> None:
        """Shut down the live iterator's worker processes (persistent ones too) and drop it
        (NOTE [worker signals]: a worker left alive would keep the process from exiting)."""
        iterator, self._iterator = self._iterator, None
        stop_workers(iterator, self._owned)


def build_streams(
    loaders: Sequence[DataLoader],
    names: Sequence[str],
    base_seed: int,
    *,
    require_resumable: bool,
) -> list[LoaderStream]:
    """One ``LoaderStream`` per train loader."""
    return [
        LoaderStream(loader, idx, name, base_seed, require_resumable=require_resumable)
        for idx, (loader, name) in enumerate(zip(loaders, names, strict=True))
    ]
