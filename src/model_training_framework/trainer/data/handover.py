"""A loader that runs dry hands over to the slot the schedule gives instead.

Loaders without a length (iterable datasets) end when they end; the schedule learns it only
when a fetch finds nothing. Training and validation both take their batches through
:func:`fetch_scheduled`, so the handover is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["fetch_scheduled"]

_Batch = TypeVar("_Batch")


class _Schedule(Protocol):
    def mark_exhausted(self, loader_idx: int) -> Any: ...


def fetch_scheduled(
    schedule: _Schedule, slot: Any, fetch: Callable[[Any], _Batch]
) -> tuple[Any, _Batch] | None:
    """The batch for ``slot``, from ``fetch(slot)``.

    When ``fetch`` raises ``StopIteration`` (the slot's loader ran dry), the schedule is told
    (``mark_exhausted``) and the slot it gives instead is fetched: a new pass of the same
    loader, or the next slot of another one.

    Returns:
        ``(slot, batch)`` with the slot that gave the batch, or None when the epoch is over
        (nothing replaces the loader that ran dry).
    """
    while True:
        try:
            return slot, fetch(slot)
        except StopIteration:
            slot = schedule.mark_exhausted(slot.loader_idx)
            if slot is None:
                return None
