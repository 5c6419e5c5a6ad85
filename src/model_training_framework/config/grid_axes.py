"""PURE: the parts a :class:`~.grid.ParameterGrid` is made of, and the rows they expand to.

An *axis* is one factor of the grid's product: a list of rows, each a dict of dotted key ->
value applied together. A single parameter gives one row per value; linked parameters (keys that
vary together, given as equal-length columns or as rows of values) and parameter sets give one
row per entry, and a distribution axis one row per seeded sample. A *conditional* parameter
multiplies the combinations its condition matches; an *exclusion* drops the combinations it
matches. :class:`GridParts` holds all of a grid's parts and refuses a key that another part
already sweeps. The builders here check their input and raise ``ConfigError`` naming the fix;
:mod:`.grid` combines the parts.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_training_framework.config.distributions import Distribution, build_distribution
from model_training_framework.config.paths import (
    MISSING,
    ConfigView,
    ViewPredicate,
    split_key,
    values_match,
)
from model_training_framework.errors import ConfigError

__all__ = [
    "Axis",
    "Conditional",
    "GridParts",
    "as_value_list",
    "build_conditional",
    "distribution_axis",
    "keys_related",
    "matches_exclusion",
    "row_from_mapping",
    "rows_from_columns",
    "rows_from_dicts",
    "rows_from_tuples",
]


@dataclass
class Axis:
    """One factor of the product: rows of key -> value applied together."""

    kind: str  # "parameter" | "linked" | "sets" | "distribution"
    rows: list[dict[str, Any]]
    spec: dict[str, Any] = field(default_factory=dict)  # how to save it (see to_dict)

    def key_list(self) -> list[str]:
        return list(dict.fromkeys(key for row in self.rows for key in row))


@dataclass(frozen=True)
class Conditional:
    key: str
    values: tuple[Any, ...]
    when: dict[str, Any] | None
    when_func: ViewPredicate | None

    def applies(self, view: ConfigView) -> bool:
        if self.when_func is not None:
            return bool(self.when_func(view))
        assert self.when is not None  # checked in add_conditional_parameter
        return all(
            values_match(expected, view.get(key, MISSING)) for key, expected in self.when.items()
        )


@dataclass
class GridParts:
    """Everything a grid holds, each list in the order it was added.

    ``linked`` is the one axis that every linked group of the grid shares; it is also in
    ``axes``, at the position of the first linked group.
    """

    axes: list[Axis] = field(default_factory=list)
    linked: Axis | None = None
    conditionals: list[Conditional] = field(default_factory=list)
    computed: list[tuple[str, Callable[[ConfigView], Any]]] = field(default_factory=list)
    constraints: list[ViewPredicate] = field(default_factory=list)
    exclusions: list[Mapping[str, Any] | ViewPredicate] = field(default_factory=list)

    def add_axis(self, axis: Axis, keys: list[str], grid_name: str) -> None:
        """Append ``axis`` after checking its ``keys`` (see :meth:`check_new_keys`)."""
        self.check_new_keys(keys, grid_name)
        self.axes.append(axis)

    def claimed_keys(self, ignore: Axis | None = None) -> list[tuple[str, str]]:
        """(key, kind of part) for every key a part sets, but those of ``ignore``."""
        claimed = [
            (key, axis.kind) for axis in self.axes if axis is not ignore for key in axis.key_list()
        ]
        claimed += [(c.key, "conditional") for c in self.conditionals]
        claimed += [(key, "computed") for key, _ in self.computed]
        return claimed

    def check_new_keys(
        self,
        keys: Sequence[str],
        grid_name: str,
        ignore: Axis | None = None,
        allow_conditional: bool = False,
    ) -> None:
        """Refuse ``keys`` that repeat, or that equal or nest in (or under) a claimed key.

        Raises:
            ConfigError: A key is not a dotted path, repeats, or overlaps a claimed key.
        """
        for key in keys:
            split_key(key)
        if len(set(keys)) != len(keys):
            raise ConfigError(f"keys {list(keys)} repeat within one call of grid {grid_name!r}")
        for key in keys:
            for other, kind in self.claimed_keys(ignore):
                if allow_conditional and kind == "conditional" and key == other:
                    continue
                if keys_related(key, other):
                    raise ConfigError(
                        f"grid {grid_name!r}: key {key!r} overlaps {other!r}, already swept as "
                        f"{kind} parameter; sweep each config key in one place only"
                    )

    def swept_keys(self) -> list[str]:
        """Keys of the axes, then the conditional keys (not computed), each once, in order."""
        keys = [key for axis in self.axes for key in axis.key_list()]
        keys += [c.key for c in self.conditionals]
        return list(dict.fromkeys(keys))

    def computed_keys(self) -> list[str]:
        """Keys set by computed parameters, in the order they were added."""
        return [key for key, _ in self.computed]


def build_conditional(
    key: str,
    values: object,
    when: Mapping[str, Any] | None,
    when_func: ViewPredicate | None,
) -> Conditional:
    """The conditional parameter ``key`` (see ``ParameterGrid.add_conditional_parameter``).

    Raises:
        ConfigError: Not exactly one of ``when``/``when_func``, an empty or non-mapping
            ``when``, a condition key that is not a dotted path, or empty values.
    """
    if (when is None) == (when_func is None):
        raise ConfigError(
            f"conditional parameter {key!r} needs exactly one of when={{key: value}} or "
            "when_func=callable"
        )
    if when is not None and (not isinstance(when, Mapping) or not when):
        raise ConfigError(f"when for {key!r} must be a non-empty mapping, got {when!r}")
    for condition_key in when or {}:
        split_key(condition_key)
    value_list = as_value_list(key, values)
    when_copy = None if when is None else copy.deepcopy(dict(when))
    return Conditional(key, tuple(value_list), when_copy, when_func)


def distribution_axis(
    key: str,
    distribution: Distribution | str,
    n_samples: int,
    seed: int,
    params: Mapping[str, Any],
) -> Axis:
    """One axis of ``n_samples`` values for ``key``, drawn with ``random.Random(f"{seed}:{key}")``.

    Raises:
        ConfigError: Unknown distribution, bad parameters, ``n_samples < 1`` or a non-int seed.
    """
    built = build_distribution(distribution, params)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples for {key!r} must be an int >= 1, got {n_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed for {key!r} must be an int, got {seed!r}")
    samples = built.sample(random.Random(f"{seed}:{key}"), n_samples)
    spec = {"key": key, "distribution": built.name, "n_samples": n_samples, "seed": seed}
    spec.update(built.params())
    return Axis("distribution", [{key: value} for value in samples], spec)


def matches_exclusion(rule: Mapping[str, Any] | ViewPredicate, view: ConfigView) -> bool:
    if callable(rule):
        return bool(rule(view))
    return all(values_match(expected, view.get(key, MISSING)) for key, expected in rule.items())


def as_value_list(key: str, values: object) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(
            f"values for {key!r} must be a list, got {values!r}; wrap a single value as [value]"
        )
    if not values:
        raise ConfigError(f"values for {key!r} are empty; a grid axis needs at least one value")
    return [copy.deepcopy(value) for value in values]


def rows_from_columns(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    lists = {key: as_value_list(key, values) for key, values in columns.items()}
    lengths = {key: len(values) for key, values in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(
            f"linked parameters need lists of equal length, got lengths {lengths}; "
            "give one value per key for every linked row"
        )
    keys = list(lists)
    return [dict(zip(keys, row, strict=True)) for row in zip(*lists.values(), strict=True)]


def rows_from_tuples(
    keys: Sequence[str], rows: Sequence[Sequence[Any] | Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Rows for ``keys``: each a sequence of values in key order, or a dict keyed by them."""
    result = []
    for row in rows:
        if isinstance(row, Mapping):
            result.append(row_from_mapping(keys, row))
            continue
        # a set (or a string) has no order to match the keys by: refuse rather than guess
        if isinstance(row, (str, bytes, set, frozenset)) or len(row) != len(keys):
            raise ConfigError(
                f"linked row {row!r} does not give one value for each of the keys {list(keys)}; "
                "give a tuple of values in key order or a dict keyed by them"
            )
        result.append(dict(zip(keys, copy.deepcopy(list(row)), strict=True)))
    return result


def row_from_mapping(keys: Sequence[str], row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in keys if key not in row]
    unexpected = [key for key in row if key not in keys]
    if missing or unexpected:
        raise ConfigError(
            f"linked row {dict(row)!r} must have exactly the keys {list(keys)}: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return {key: copy.deepcopy(row[key]) for key in keys}


def rows_from_dicts(rows: Sequence[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    if isinstance(rows, (str, bytes, Mapping)) or not rows:
        raise ConfigError(f"{what} must be a non-empty list of mappings, got {rows!r}")
    if not all(isinstance(row, Mapping) and row for row in rows):
        raise ConfigError(f"every entry of {what} must be a non-empty mapping, got {rows!r}")
    return [copy.deepcopy(dict(row)) for row in rows]


def keys_related(first: str, second: str) -> bool:
    return first == second or first.startswith(second + ".") or second.startswith(first + ".")
