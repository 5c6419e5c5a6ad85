"""Facts about the user's DataLoaders that the trainer checks or acts on, outside a stream:
their length, whether their class can be read through a stream, and shutting down workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

__all__ = ["check_train_loader_classes", "is_stateful", "loader_length", "stop_workers"]


def loader_length(loader: DataLoader) -> int | None:
    """Number of batches in one pass of ``loader``, or None when it has no ``__len__``."""
    try:
        return len(loader)
    except TypeError:
        return None


def is_stateful(obj: object) -> bool:
    """Whether ``obj`` has the ``state_dict()``/``load_state_dict()`` resume protocol."""
    return callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    )


def check_train_loader_classes(loaders: Sequence[DataLoader]) -> None:
    """A map-style train loader is read through the stream's own ``DataLoader`` (NOTE [exact
    resume]), so a subclass's own ``__iter__`` would never run: refuse it rather than train on
    other batches than it yields. torchdata's ``StatefulDataLoader`` (stateful) is fine.

    Raises:
        TypeError: a map-style train loader's class overrides ``__iter__``.
    """
    for idx, loader in enumerate(loaders):
        own_iter = type(loader).__iter__ is not DataLoader.__iter__
        if own_iter and not isinstance(loader.dataset, IterableDataset) and not is_stateful(loader):
            raise TypeError(
                f"train_loaders[{idx}] is a {type(loader).__name__}, a DataLoader subclass with "
                "its own __iter__, which the trainer would not call: it reads a map-style "
                "dataset through its own DataLoader (same dataset, sampler, collate_fn and "
                "workers) so that a resumed run continues exactly. Move what __iter__ does into "
                "the dataset, the collate_fn or the training step"
            )


def stop_workers(iterator: Any, loader: Any = None) -> None:
    """Shut down the worker processes of a DataLoader ``iterator`` now (NOTE [worker signals]).

    A no-op for an iterator without worker processes (or None). When ``loader`` caches
    ``iterator`` (``persistent_workers``), the cache is dropped too, so the loader's next
    ``iter()`` starts fresh workers.

    Args:
        iterator: what ``iter(loader)`` returned, or None.
        loader: the DataLoader it came from (None: not known).
    """
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()
    if (
        loader is not None
        and iterator is not None
        and getattr(loader, "_iterator", None) is iterator
    ):
        loader._iterator = None
