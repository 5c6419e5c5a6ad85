"""Checkpoint state as one registry: ``{key: Stateful}``, saved and loaded symmetrically.

A checkpoint's payload is ``{key: entry.state_dict()}`` for every entry of the registry, and
loading hands every entry back what it saved under the same key: no list of keys is written
in one place and read back in another. Loading is strict. An entry of the checkpoint that
nothing in this run restores, or an entry this run restores that the checkpoint lacks, is a
:class:`CheckpointError` naming them, raised before any entry is loaded.

The file's metadata (format version, step, metrics, code version and the checkpoint manager's
own state, ``file_format.METADATA_KEYS``) belongs to the checkpoint manager, which writes and
restores it; it is not part of the registry.

Example:
    >>> class Counter:
    ...     def __init__(self): self.count = 0
    ...     def state_dict(self): return {"count": self.count}
    ...     def load_state_dict(self, state): self.count = state["count"]
    >>> saved, fresh = Counter(), Counter()
    >>> saved.count = 3
    >>> payload = save_state({"counter": saved}, SingleProcess())
    >>> load_state({"counter": fresh}, payload, "example")()
    >>> fresh.count
    3
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.state.file_format import METADATA_KEYS

__all__ = [
    "HOOK_ENTRIES_KEY",
    "PerRank",
    "SingleProcess",
    "Stateful",
    "load_state",
    "note_hook_entries",
    "save_state",
]

# The keys ``on_checkpoint_save`` hooks added to a payload, listed in it: the hooks' own
# entries, handed to ``on_checkpoint_load`` and restored by no registry entry.
HOOK_ENTRIES_KEY = "hook_entries"


class Stateful(Protocol):
    """What a registry entry is (as ``torch.distributed.checkpoint.stateful.Stateful``)."""

    def state_dict(self) -> Any:
        """The entry's state: tensors and plain Python values only."""

    def load_state_dict(self, state: Any) -> None:
        """Restore what :meth:`state_dict` returned."""


class _Gatherer(Protocol):
    world_size: int
    rank: int

    def gather_objects(self, obj: Any) -> list[Any]: ...


class SingleProcess:
    """The gatherer of a run without a process group (one rank)."""

    world_size, rank = 1, 0

    def gather_objects(self, obj: Any) -> list[Any]:
        return [obj]


class PerRank:
    """An entry whose state differs between ranks; it is saved as a list over ranks.

    :func:`save_state` gathers every ``PerRank`` entry in one collective; on load this rank
    takes its own item. A checkpoint of another world size calls ``on_other_world_size``
    with the saved list instead (default: the entry keeps its fresh state).

    Args:
        local: This rank's ``Stateful``.
        dist: Gives ``rank`` and ``world_size``.
        on_other_world_size: Called with the saved list when it is not one item per rank.
    """

    def __init__(
        self,
        local: Stateful,
        dist: _Gatherer,
        *,
        on_other_world_size: Callable[[Sequence[Any]], None] | None = None,
    ) -> None:
        self.local = local
        self._dist = dist
        self._on_other_world_size = on_other_world_size

    def state_dict(self) -> Any:
        """This rank's state (:func:`save_state` gathers it from every rank)."""
        return self.local.state_dict()

    def load_state_dict(self, states: Sequence[Any]) -> None:
        """Load this rank's item of the saved list."""
        if len(states) == self._dist.world_size:
            self.local.load_state_dict(states[self._dist.rank])
        elif self._on_other_world_size is not None:
            self._on_other_world_size(states)


def save_state(registry: Mapping[str, Stateful], dist: _Gatherer) -> dict[str, Any]:
    """Every entry's state under its key (a collective when the registry has a ``PerRank``).

    Returns:
        ``{key: state}`` in the registry's order; a ``PerRank`` entry's state is the list of
        every rank's state (on every rank).
    """
    state = {
        key: entry.state_dict() for key, entry in registry.items() if not isinstance(entry, PerRank)
    }
    local = {
        key: entry.state_dict() for key, entry in registry.items() if isinstance(entry, PerRank)
    }
    if local:
        gathered = dist.gather_objects(local)
        state.update({key: [rank_state[key] for rank_state in gathered] for key in local})
    return {key: state[key] for key in registry}


def load_state(
    registry: Mapping[str, Stateful],
    payload: Mapping[str, Any],
    source: object,
    *,
    defer: Collection[str] = (),
) -> Callable[[], None]:
    """Load every entry from ``payload`` (a checkpoint's content), in the registry's order.

    Args:
        registry: The entries to restore.
        payload: The checkpoint's content (its metadata keys are ignored).
        source: The checkpoint, for messages.
        defer: Keys loaded only when the returned function is called.

    Returns:
        A function that loads the ``defer`` entries.

    Raises:
        CheckpointError: The checkpoint's entries differ from the registry's (nothing is
            loaded then), or an entry's state lacks a key it needs.
    """
    check_entries(registry, payload, source)
    for key, entry in registry.items():
        if key not in defer:
            _load_entry(key, entry, payload[key], source)

    def load_deferred() -> None:
        for key in defer:
            _load_entry(key, registry[key], payload[key], source)

    return load_deferred


def check_entries(registry: Mapping[str, Any], payload: Mapping[str, Any], source: object) -> None:
    """Raise unless ``payload`` holds exactly the registry's entries (besides metadata).

    Raises:
        CheckpointError: Names the entries left over and the entries missing, and the fix.
    """
    hook_entries = {HOOK_ENTRIES_KEY, *payload.get(HOOK_ENTRIES_KEY, ())}
    leftover = [
        key
        for key in payload
        if key not in registry and key not in METADATA_KEYS and key not in hook_entries
    ]
    missing = [key for key in registry if key not in payload]
    if not leftover and not missing:
        return
    found = []
    if leftover:
        found.append(f"holds {leftover} that nothing in this run restores")
    if missing:
        found.append(f"lacks {missing} that this run restores")
    raise CheckpointError(
        f"checkpoint {source} " + " and ".join(found) + f" (this run restores {list(registry)}); "
        "it was written by another version of the framework or by a run with other "
        "components. Resume with the framework version and the components (optimizers, "
        "schedulers, AMP, hooks) of the run that wrote it, or start a new run under another "
        "experiment_name (a warm start, warm_start or set_warm_start_loader, can take the "
        "weights)"
    )


def note_hook_entries(payload: dict[str, Any], before: Collection[str]) -> None:
    """List in ``payload`` the keys added since it held ``before`` (by ``on_checkpoint_save``
    hooks), so that loading it does not take them for entries of another run."""
    added = sorted(key for key in payload if key not in before)
    if added:
        payload[HOOK_ENTRIES_KEY] = added


def _load_entry(key: str, entry: Stateful, state: Any, source: object) -> None:
    try:
        entry.load_state_dict(state)
    except KeyError as err:
        raise CheckpointError(
            f"checkpoint {source}: its '{key}' entry lacks {err}; the checkpoint is damaged or "
            "was written by another version of the framework"
        ) from err
