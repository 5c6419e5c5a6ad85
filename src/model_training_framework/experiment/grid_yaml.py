"""The grid file format: sweeps written in YAML (or JSON) instead of Python.

A grid file holds the base config, the naming strategy and one or more grids::

    name: lr_sweep
    base_config: base.yaml          # path relative to this file, or an inline mapping
    naming: parameter_based         # or hash_based / timestamp_based
    parameters:                     # each key is one axis
      optimizer.lr: [0.001, 0.01]
      model.hidden: [32, 64]
    linked:                         # each entry is a group of keys that vary together;
      - {training.max_epochs: [1, 2], optimizer.weight_decay: [0.0, 0.1]}   # groups are
      - [{training.max_epochs: 5, optimizer.weight_decay: 0.5}]              # alternatives
    parameter_sets:                 # each entry is one axis of whole sets
      - [{model.size: s, model.hidden: 32}, {model.size: l, model.hidden: 256}]
    distributions:
      - {key: model.dropout, distribution: uniform, n_samples: 3, seed: 0, low: 0.0, high: 0.5}
      - {key: data.augment, distribution: choice, n_samples: 2, choices: [a, b, c], weights: [1, 1, 2]}
    conditional:
      - {key: optimizer.momentum, values: [0.9, 0.99], when: {optimizer.name: sgd}}
    exclude:
      - {optimizer.lr: 0.01, model.hidden: 64}

Several grids go under ``grids:`` as a list of such grid sections (``name``, ``description``,
``parameters``, ...), next to ``base_config`` and ``naming``. ``${VAR}`` /
``${VAR:-default}`` in string values are expanded (see :mod:`.manager`). Callables (computed
parameters, constraints, ``when_func``) exist only in Python grids.

Example:
    >>> doc = parse_grid_document({"name": "g", "base_config": {}, "parameters": {"seed": [1, 2]}})
    >>> doc.grids[0].get_parameter_count(doc.base_config)
    2
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_training_framework.config.grid import GRID_SECTIONS, ParameterGrid
from model_training_framework.config.naming import NamingStrategy
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.manager import read_config_file, substitute_env_vars

__all__ = [
    "GridDocument",
    "build_grid_document",
    "parse_grid_document",
    "read_grid_document",
]

_DOCUMENT_KEYS = frozenset({"base_config", "naming", "grids"})


@dataclass
class GridDocument:
    """A parsed grid file: the base config (nested dict), naming strategy and grids."""

    base_config: dict[str, Any]
    naming: NamingStrategy
    grids: list[ParameterGrid]


def _base_config_from(value: object, base_dir: Path | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            if base_dir is None:
                raise ConfigError(
                    f"base_config {value!r} is a relative path but the grid has no file to be "
                    "relative to; give an absolute path or an inline mapping"
                )
            path = base_dir / path
        return substitute_env_vars(read_config_file(path), where=str(path))
    raise ConfigError(
        f"base_config must be a file path or a mapping, got {type(value).__name__}: {value!r}"
    )


def _grid_sections(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inline = {key: data[key] for key in data if key in GRID_SECTIONS}
    if "grids" not in data:
        return [inline]
    if inline:
        raise ConfigError(
            f"the grid file has both 'grids:' and top-level grid sections {sorted(inline)}; "
            "move those sections into an entry of 'grids:'"
        )
    grids = data["grids"]
    if not isinstance(grids, Sequence) or isinstance(grids, (str, bytes)) or not grids:
        raise ConfigError(f"'grids:' must be a non-empty list of grid sections, got {grids!r}")
    return list(grids)


def parse_grid_document(data: Mapping[str, Any], base_dir: Path | None = None) -> GridDocument:
    """Build a :class:`GridDocument` from a parsed grid file.

    Args:
        data: The file's top-level mapping.
        base_dir: Directory that a relative ``base_config`` path is relative to.

    Returns:
        The document.

    Raises:
        ConfigError: Unknown top-level keys (valid ones listed), a missing grid name, a bad
            naming strategy or base config, or an invalid grid section.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a grid file must hold a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _DOCUMENT_KEYS - GRID_SECTIONS)
    if unknown:
        valid = sorted(_DOCUMENT_KEYS | GRID_SECTIONS)
        raise ConfigError(f"grid file keys {unknown} are unknown; valid keys: {valid}")
    naming = NamingStrategy.parse(data.get("naming") or NamingStrategy.PARAMETER_BASED)
    grids = []
    for index, section in enumerate(_grid_sections(data)):
        if not isinstance(section, Mapping) or not section.get("name"):
            raise ConfigError(f"grid #{index} needs a 'name:', got {section!r}")
        try:
            grids.append(ParameterGrid.from_dict(section))
        except ConfigError as err:
            raise ConfigError(f"grid {section['name']!r}: {err}") from err
    return GridDocument(_base_config_from(data.get("base_config"), base_dir), naming, grids)


def read_grid_document(path: str | Path) -> GridDocument:
    """Read a grid file (YAML or JSON by extension), expanding ``${VAR}`` references.

    Raises:
        ConfigError: Unreadable file, unset variable, or invalid content (message names the
            file).
    """
    file_path = Path(path)
    data = substitute_env_vars(read_config_file(file_path), where=str(file_path))
    try:
        return parse_grid_document(data, base_dir=file_path.parent)
    except ConfigError as err:
        raise ConfigError(f"{file_path}: {err}") from err


def build_grid_document(
    base_config: Mapping[str, Any], naming: NamingStrategy, grids: Sequence[ParameterGrid]
) -> dict[str, Any]:
    """Return the plain-data grid file for a sweep (inline base config, ``grids:`` list).

    Raises:
        ConfigError: A grid holds callables, which files cannot hold (listed in the message).
    """
    problems = [f"grid {g.name!r}: {part}" for g in grids for part in g.unserialisable_parts()]
    if problems:
        raise ConfigError(
            "the sweep cannot be saved because these parts are Python callables: "
            + "; ".join(problems)
            + ". Use when={...} conditions and exclusion mappings instead, or keep the sweep in "
            "Python"
        )
    return {
        "base_config": copy.deepcopy(dict(base_config)),
        "naming": naming.value,
        "grids": [grid.to_dict() for grid in grids],
    }
