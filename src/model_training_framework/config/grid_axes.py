"""PURE: the parts a :class:`~.grid.ParameterGrid` is made of, and the rows they expand to.

An *axis* is one factor of the grid's product: a list of rows, each a dict of dotted key ->
value applied together. A single parameter gives one row per value; linked parameters (keys that
vary together, given as equal-length columns or as rows of values) and parameter sets give one
row per entry. A *conditional* parameter multiplies the combinations its condition matches; an
*exclusion* drops the combinations it matches. The builders here check their input and raise
``ConfigError`` naming the fix; :mod:`.grid` combines the parts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_training_framework.config.paths import (
    MISSING,
    ConfigView,
    ViewPredicate,
    values_match,
)
from model_training_framework.errors import ConfigError

__all__ = [
    "Axis",
    "Conditional",
    "as_value_list",
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
