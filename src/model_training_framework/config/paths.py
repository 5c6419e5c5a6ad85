"""PURE: dotted config paths (``"optimizer.lr"``) and the merged view given to user callables.

Helpers for nested config dicts addressed by dotted keys: read (:func:`get_path`), write
(:func:`set_path`), merge swept values into a base (:func:`merge_parameters`), compare values
like conditions do (:func:`values_match`), and :class:`ConfigView`, the read-only merged view
(base config + swept values) that grid conditions, computed values and constraints receive.

Example:
    >>> merged = merge_parameters({"optimizer": {"lr": 0.1}}, {"optimizer.lr": 0.01})
    >>> get_path(merged, "optimizer.lr")
    0.01
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from model_training_framework.errors import ConfigError

__all__ = [
    "MISSING",
    "ConfigView",
    "ViewPredicate",
    "get_path",
    "merge_parameters",
    "set_path",
    "split_key",
    "values_match",
]

MISSING = object()  # "no such key" in views and conditions
_NO_DEFAULT = object()  # get_path without a default raises KeyError
ViewPredicate = Callable[["ConfigView"], bool]


def split_key(key: object) -> list[str]:
    """Split a dotted config key into its parts.

    Args:
        key: a dotted path such as ``"optimizer.lr"``.

    Returns:
        The non-empty parts, e.g. ``["optimizer", "lr"]``.

    Raises:
        ConfigError: ``key`` is not a string of non-empty parts separated by single dots.
    """
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"parameter key {key!r} is not a dotted config path; use names like 'optimizer.lr' "
            "(non-empty parts separated by single dots)"
        )
    return key.split(".")


def get_path(config: Mapping[str, Any], key: str, default: Any = _NO_DEFAULT) -> Any:
    """Return the value at dotted ``key`` in nested ``config``.

    Args:
        config: Nested mapping.
        key: Dotted path such as ``"optimizer.lr"``.
        default: Returned when the path does not exist; without it a KeyError is raised.

    Raises:
        KeyError: The path does not exist and no default was given.
    """
    node: Any = config
    for part in split_key(key):
        if not isinstance(node, Mapping) or part not in node:
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def set_path(config: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in nested ``config`` in place, creating missing sections.

    Raises:
        ConfigError: A section on the way holds a non-mapping value.
    """
    parts = split_key(key)
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"cannot set {key!r}: {where!r} holds {child!r}, not a section; "
                f"sweep {where!r} itself or make it a mapping in the base config"
            )
        node = child
    node[parts[-1]] = value


def merge_parameters(base: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``base`` with every dotted key of ``parameters`` set (deep-copied)."""
    merged = copy.deepcopy(dict(base))
    for key, value in parameters.items():
        set_path(merged, key, copy.deepcopy(value))
    return merged


def _copy_along(node: Mapping[str, Any], parts: Sequence[str], value: Any) -> dict[str, Any]:
    """Shallow-copy only the sections on ``parts`` (structural sharing; used for views)."""
    copied = dict(node)
    if len(parts) == 1:
        copied[parts[0]] = value
        return copied
    child = copied.get(parts[0])
    copied[parts[0]] = _copy_along(child if isinstance(child, Mapping) else {}, parts[1:], value)
    return copied


def values_match(expected: Any, actual: Any) -> bool:
    """Equality for conditions and exclusions: numbers compare by value, bools only with bools."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    return bool(expected == actual)


class ConfigView(Mapping[str, Any]):
    """Read-only merged view (base config + swept values) given to user callables.

    ``view["optimizer.lr"]`` and ``view["optimizer"]["lr"]`` both work; ``view.get(key,
    default)`` too. Treat the returned sections as read-only: they may be shared with the base.
    """

    def __init__(self, base: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
        merged: Mapping[str, Any] = base
        for key, value in parameters.items():
            merged = _copy_along(merged, split_key(key), value)
        self._data = merged
        self.parameters: dict[str, Any] = dict(parameters)

    def __getitem__(self, key: str) -> Any:
        return get_path(self._data, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and get_path(self._data, key, MISSING) is not MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of the merged config."""
        return copy.deepcopy(dict(self._data))

    def __repr__(self) -> str:
        return f"ConfigView(parameters={self.parameters!r})"
