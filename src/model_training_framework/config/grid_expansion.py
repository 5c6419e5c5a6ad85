"""PURE: the combinations a grid's parts expand to, in a deterministic order.

Each combination of axis rows (their product, first axis outermost) passes, in this order:
conditional parameters (a matching combination is multiplied by the conditional values),
computed parameters, constraints and exclusions. Conditions, computed values, constraints and
exclusions see the merged view (:class:`ConfigView`: the base config with this combination's
values set). :meth:`.grid.ParameterGrid.generate_permutations` and its count both run
:func:`expand_parts`, so they always agree.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from model_training_framework.config.grid_axes import GridParts, matches_exclusion
from model_training_framework.config.paths import ConfigView
from model_training_framework.errors import ConfigError

__all__ = ["expand_parts"]


def expand_parts(
    parts: GridParts, base: Mapping[str, Any], grid_name: str
) -> Iterator[dict[str, Any]]:
    """Yield each kept combination of ``parts`` as dotted key -> value (values deep-copied).

    Args:
        parts: The grid's parts.
        base: Nested base config under the combination's values (what conditions see).
        grid_name: The grid's name, for error messages.

    Raises:
        ConfigError: Two conditional parameters for one key apply to the same combination.
    """
    for rows in itertools.product(*(axis.rows for axis in parts.axes)):
        combination: dict[str, Any] = {}
        for row in rows:
            combination.update(row)
        for expanded in _expand_conditionals(parts, combination, base, 0, grid_name):
            complete = _with_computed(parts, expanded, base)
            if _is_kept(parts, ConfigView(base, complete)):
                yield copy.deepcopy(complete)


def _expand_conditionals(
    parts: GridParts,
    combination: dict[str, Any],
    base: Mapping[str, Any],
    position: int,
    grid_name: str,
) -> Iterator[dict[str, Any]]:
    if position == len(parts.conditionals):
        yield combination
        return
    conditional = parts.conditionals[position]
    if not conditional.applies(ConfigView(base, combination)):
        yield from _expand_conditionals(parts, combination, base, position + 1, grid_name)
        return
    if conditional.key in combination:
        raise ConfigError(
            f"grid {grid_name!r}: two conditional parameters for {conditional.key!r} apply "
            f"to the combination {combination!r}; make their conditions exclusive"
        )
    for value in conditional.values:
        yield from _expand_conditionals(
            parts, {**combination, conditional.key: value}, base, position + 1, grid_name
        )


def _with_computed(
    parts: GridParts, combination: dict[str, Any], base: Mapping[str, Any]
) -> dict[str, Any]:
    complete = dict(combination)
    for key, fn in parts.computed:
        complete[key] = fn(ConfigView(base, complete))
    return complete


def _is_kept(parts: GridParts, view: ConfigView) -> bool:
    if not all(constraint(view) for constraint in parts.constraints):
        return False
    return not any(matches_exclusion(rule, view) for rule in parts.exclusions)
