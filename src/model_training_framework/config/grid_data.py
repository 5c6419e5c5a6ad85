"""PURE: a grid as plain data, the ``grids:`` entry of a grid file (its sections, both ways).

:meth:`.grid.ParameterGrid.to_dict` writes a grid's parts as the sections in
:data:`GRID_SECTIONS`; :meth:`.grid.ParameterGrid.from_dict` reads them back through the grid's
own ``add_*`` methods, so a grid read from a file is checked like one built in Python. Parts
that are Python callables (``when_func``, computed parameters, constraints, callable
exclusions) cannot be written, and saving such a grid raises a ``ConfigError`` naming them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from model_training_framework.config.grid_axes import GridParts
from model_training_framework.errors import ConfigError

if TYPE_CHECKING:
    from model_training_framework.config.grid import ParameterGrid

__all__ = [
    "GRID_SECTIONS",
    "add_sections",
    "check_sections",
    "parts_to_data",
    "unserialisable_parts",
]

GRID_SECTIONS = frozenset(
    {
        "name",
        "description",
        "parameters",
        "linked",
        "parameter_sets",
        "distributions",
        "conditional",
        "exclude",
    }
)


def unserialisable_parts(parts: GridParts) -> list[str]:
    """Describe every part that is a Python callable and so cannot be written to a file."""
    found = [
        f"conditional parameter {c.key!r} (when_func)" for c in parts.conditionals if c.when_func
    ]
    found += [f"computed parameter {key!r}" for key, _ in parts.computed]
    found += [f"constraint #{i}" for i, _ in enumerate(parts.constraints)]
    found += [f"exclusion #{i} (a callable)" for i, r in enumerate(parts.exclusions) if callable(r)]
    return found


def parts_to_data(name: str, description: str, parts: GridParts) -> dict[str, Any]:
    """Return the grid ``name`` with ``parts`` as plain data (empty sections left out).

    Raises:
        ConfigError: ``parts`` hold callables (listed in the message); they cannot be saved.
    """
    callables = unserialisable_parts(parts)
    if callables:
        raise ConfigError(
            f"grid {name!r} cannot be saved: {', '.join(callables)} are Python callables, "
            "which a grid file cannot hold; use when={...} and exclusion mappings, or keep "
            "this grid in Python"
        )
    data: dict[str, Any] = {"name": name, "description": description}
    data["parameters"] = {
        a.spec["key"]: [r[a.spec["key"]] for r in a.rows]
        for a in parts.axes
        if a.kind == "parameter"
    }
    data["linked"] = parts.linked.spec["groups"] if parts.linked else []
    data["parameter_sets"] = [a.spec["sets"] for a in parts.axes if a.kind == "sets"]
    data["distributions"] = [a.spec for a in parts.axes if a.kind == "distribution"]
    data["conditional"] = [
        {"key": c.key, "values": list(c.values), "when": c.when} for c in parts.conditionals
    ]
    data["exclude"] = list(parts.exclusions)
    return copy.deepcopy({key: value for key, value in data.items() if value or key == "name"})


def check_sections(data: Mapping[str, Any]) -> None:
    """Refuse sections that are not in :data:`GRID_SECTIONS`.

    Raises:
        ConfigError: Unknown sections, with the valid ones listed.
    """
    unknown = sorted(set(data) - GRID_SECTIONS)
    if unknown:
        raise ConfigError(
            f"grid sections {unknown} are unknown; valid sections: {sorted(GRID_SECTIONS)}"
        )


def add_sections(grid: ParameterGrid, data: Mapping[str, Any]) -> ParameterGrid:
    """Add the parts that the sections of ``data`` describe to ``grid``, and return it.

    Raises:
        ConfigError: An invalid entry (the ``add_*`` method it goes to says why).
    """
    for key, values in (data.get("parameters") or {}).items():
        grid.add_parameter(key, values)
    for group in data.get("linked") or []:
        grid.add_linked_parameters(group)
    for sets in data.get("parameter_sets") or []:
        grid.add_parameter_sets(sets)
    for spec in data.get("distributions") or []:
        grid.add_parameter_distribution(**_distribution_arguments(spec))
    for spec in data.get("conditional") or []:
        grid.add_conditional_parameter(**_conditional_arguments(spec))
    if data.get("exclude"):
        grid.exclude_combinations(data["exclude"])
    return grid


def _distribution_arguments(spec: object) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or not {"key", "distribution", "n_samples"} <= set(spec):
        raise ConfigError(
            f"distribution entry {spec!r} needs key, distribution and n_samples "
            "(plus seed and the distribution's parameters)"
        )
    arguments = dict(spec)
    if arguments.get("weights", 0) is None:
        del arguments["weights"]
    return arguments


def _conditional_arguments(spec: object) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or set(spec) != {"key", "values", "when"}:
        raise ConfigError(f"conditional entry {spec!r} needs exactly key, values and when")
    return dict(spec)
