"""What changed between the run that wrote a checkpoint and the run resuming it (PURE).

A run is described by a flat *signature*: its trainer config as dotted keys
(``performance.gradient_accumulation_steps``), plus facts the config does not hold, under keys
no config field uses: ``model.<state_dict key>`` (the tensor's shape), ``optimizers[i]...``
(hyperparameters as the optimizer was built, and how many parameters each group holds),
``world_size``, ``train_loaders.names`` and ``train_loaders.schedule.<setting>`` (the loader
lengths and schedule settings the schedule was built from). :func:`compare_signatures` sorts
each difference into one of three kinds:

* ``INCOMPATIBLE``: the checkpoint cannot continue this run (model shapes, optimizer layout,
  world size, the set of loaders, their lengths or the sampling strategy, ...). Always an error.
* ``SCHEDULE``: the checkpoint loads, but the data schedule changes (sampling weights, gradient
  accumulation). An error unless ``fault_tolerance.allow_schedule_changes_on_resume``.
* ``OTHER``: everything else (learning rate, logging, checkpoint settings, ...). A warning.

Example:
    >>> diff = compare_signatures(
    ...     {"seed": 1, "performance.gradient_accumulation_steps": 2},
    ...     {"seed": 2, "performance.gradient_accumulation_steps": 4},
    ... )
    >>> [c.key for c in diff.schedule], [c.key for c in diff.other]
    (['performance.gradient_accumulation_steps'], ['seed'])
    >>> print(describe_changes(diff.other))
      seed: 1 -> 2
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ABSENT",
    "Change",
    "ChangeKind",
    "ResumeDiff",
    "classify",
    "compare_signatures",
    "describe_changes",
    "flatten",
]

ABSENT = "<absent>"
# Not changes of the training: the switch itself, and the names of the run directory (a run
# started from another run's checkpoint, or a run directory that was moved).
_IGNORED = (
    "fault_tolerance.allow_schedule_changes_on_resume",
    "experiment_name",
    "checkpoint.root_dir",
)
_MAX_VALUE_CHARS = 60


class ChangeKind(enum.Enum):
    INCOMPATIBLE = "incompatible"
    SCHEDULE = "schedule"
    OTHER = "other"


# First matching prefix wins: the two loadable schedule settings come before the rule that
# makes the rest of train_loader_config incompatible.
_RULES: tuple[tuple[str, ChangeKind], ...] = (
    ("train_loader_config.dataloader_weights", ChangeKind.SCHEDULE),
    ("performance.gradient_accumulation_steps", ChangeKind.SCHEDULE),
    ("train_loader_config.", ChangeKind.INCOMPATIBLE),
    ("train_loaders.", ChangeKind.INCOMPATIBLE),
    ("model.", ChangeKind.INCOMPATIBLE),
    ("world_size", ChangeKind.INCOMPATIBLE),
    ("optimizers.count", ChangeKind.INCOMPATIBLE),
)
_LAYOUT_SUFFIX = ".num_params"  # optimizers[i].param_groups[j].num_params


@dataclass(frozen=True)
class Change:
    """One key whose value differs; ``ABSENT`` stands for a side that lacks the key."""

    key: str
    saved: Any
    current: Any

    def describe(self) -> str:
        return f"{self.key}: {_short(self.saved)} -> {_short(self.current)}"


@dataclass
class ResumeDiff:
    """The differences between a checkpoint's signature and this run's, by kind."""

    incompatible: list[Change] = field(default_factory=list)
    schedule: list[Change] = field(default_factory=list)
    other: list[Change] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.incompatible or self.schedule or self.other)

    def changed(self, key: str) -> bool:
        """Whether ``key`` is among the differences."""
        return any(c.key == key for c in (*self.incompatible, *self.schedule, *self.other))


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists and other values are kept whole.

    Example:
        >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
        {'a.b': 1, 'a.c': [1, 2], 'd': None}
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def classify(key: str) -> ChangeKind:
    """The kind of a difference in ``key`` (see the module docstring)."""
    if key.startswith("optimizers[") and key.endswith(_LAYOUT_SUFFIX):
        return ChangeKind.INCOMPATIBLE
    for prefix, kind in _RULES:
        if key == prefix or key.startswith(prefix):
            return kind
    return ChangeKind.OTHER


def compare_signatures(saved: Mapping[str, Any], current: Mapping[str, Any]) -> ResumeDiff:
    """Sort every key whose value differs between two flat signatures by its kind.

    Args:
        saved: The signature of the run that wrote the checkpoint.
        current: This run's signature.

    Returns:
        The differences, each list sorted by key.
    """
    diff = ResumeDiff()
    by_kind = {
        ChangeKind.INCOMPATIBLE: diff.incompatible,
        ChangeKind.SCHEDULE: diff.schedule,
        ChangeKind.OTHER: diff.other,
    }
    for key in sorted(set(saved) | set(current)):
        if key in _IGNORED:
            continue
        before, after = saved.get(key, ABSENT), current.get(key, ABSENT)
        if _same(before, after):
            continue
        by_kind[classify(key)].append(Change(key, before, after))
    return diff


def describe_changes(changes: Sequence[Change]) -> str:
    """One indented ``key: saved -> current`` line per change."""
    return "\n".join(f"  {change.describe()}" for change in changes)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _short(value: Any) -> str:
    text = value if value is ABSENT else repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."
