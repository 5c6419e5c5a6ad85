"""Renamed keys in dotted overrides (``mtf train --set``, swept values) and in what grids read.

The rules themselves live in :mod:`.legacy`; this module applies them to dotted keys instead of
nested mappings.

Example:
    >>> import warnings
    >>> from model_training_framework.config.legacy import EXPERIMENT_RULES
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     migrate_overrides({"optimizer.learning_rate": 0.1}, EXPERIMENT_RULES)
    {'optimizer.lr': 0.1}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from model_training_framework.config.legacy import LegacyRule, RenameRule, _dotted, _parent
from model_training_framework.errors import ConfigError

__all__ = ["migrate_overrides", "with_old_spellings"]


def migrate_overrides(overrides: Mapping[str, Any], rules: Sequence[LegacyRule]) -> dict[str, Any]:
    """Return dotted-key overrides (``mtf train --set``, swept values) with every old key
    replaced by its new key(s).

    An override replaces the value at its key; given under an old key, it must land on the new
    key before it is merged into a base config, or it would conflict with the base's new key
    (``--set optimizer.learning_rate=0.1`` over ``optimizer: {lr: 0.01}``). Migrate the base
    with :func:`migrate_legacy_keys` first, for the other way round.

    Args:
        overrides: dotted key -> value, e.g. ``{"optimizer.learning_rate": 0.1}``.
        rules: the rules for the target config class, e.g. :data:`EXPERIMENT_RULES`.

    Returns:
        The overrides under the new keys (``performance.mixed_precision`` becomes
        ``performance.use_amp`` and ``performance.amp_dtype``; a dropped key disappears).

    Raises:
        ConfigError: an old key and its new key (or two old keys that land on one new key)
            are both given, with different values, as :func:`migrate_legacy_keys` does.

    Warns:
        DeprecationWarning: once per old key, naming the new key.
    """
    migrated: dict[str, Any] = {}
    sources: dict[str, str] = {}  # new key -> the key the user wrote
    for key, value in overrides.items():
        for new_key, new_value in _migrated_override(key, value, rules).items():
            if new_key in migrated and migrated[new_key] != new_value:
                old, kept = (key, sources[new_key]) if key != new_key else (sources[new_key], key)
                raise ConfigError(
                    f"{new_key}: conflicts with the deprecated key '{old}' "
                    f"({migrated[new_key]!r} vs {new_value!r}); remove '{old}' and keep "
                    f"'{kept}'"
                )
            migrated[new_key] = new_value
            sources[new_key] = key
    return migrated


def _migrated_override(key: str, value: Any, rules: Sequence[LegacyRule]) -> dict[str, Any]:
    """One dotted override under its new key(s) (itself when no rule renames it)."""
    path = tuple(key.split("."))
    # The old key itself, or a key inside a renamed section (multi.sampling_strategy).
    rule = next((r for r in rules if r.old_path == path[: len(r.old_path)]), None)
    if rule is None:
        return {key: value}
    nested: dict[str, Any] = {path[-1]: copy.deepcopy(value)}
    for part in reversed(path[:-1]):
        nested = {part: nested}
    rule.apply(nested)
    return _dotted_leaves(nested, depth=len(path))


def with_old_spellings(data: Mapping[str, Any], rules: Sequence[LegacyRule]) -> dict[str, Any]:
    """Return a deep copy of migrated ``data`` where each renamed key is also readable under its
    old name (``optimizer.type`` beside ``optimizer.name``), without warnings.

    Grid conditions, exclusions, computed values and constraints read the base config by the
    keys the user wrote; the base is migrated first, so a grid written with old keys would
    otherwise find nothing there. Only what a grid reads gets this copy, never a config.
    """
    aliased = copy.deepcopy(dict(data))
    for rule in rules:
        if not isinstance(rule, RenameRule):
            continue
        new_parent = _parent(aliased, rule.new_path)
        old_parent = _parent(aliased, rule.old_path)
        if new_parent is None or rule.new_path[-1] not in new_parent:
            continue
        if old_parent is not None and rule.old_path[-1] not in old_parent:
            old_parent[rule.old_path[-1]] = copy.deepcopy(new_parent[rule.new_path[-1]])
    return aliased


def _dotted_leaves(node: Any, depth: int, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"a": {"b": 1, "c": 2}}`` -> ``{"a.b": 1, "a.c": 2}``, down to ``depth`` levels."""
    if depth == 0 or not isinstance(node, dict):
        return {_dotted(prefix): node}
    leaves: dict[str, Any] = {}
    for key, child in node.items():
        leaves.update(_dotted_leaves(child, depth - 1, (*prefix, key)))
    return leaves
