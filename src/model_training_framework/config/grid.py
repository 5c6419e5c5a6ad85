"""PURE: parameter grids over dotted config keys (standard library only).

A :class:`ParameterGrid` is a product of *axes*. Each axis is a list of rows; a row is a dict of
dotted key -> value applied together:

- ``add_parameter(key, values)``: one axis, one row per value;
- ``add_linked_parameters(...)``: rows whose keys vary together. Every linked group of a grid
  goes into one shared axis, so several linked groups are *alternatives* (their rows are
  concatenated), multiplied with the other axes;
- ``add_parameter_sets(sets)``: one axis per call, one row per set;
- ``add_parameter_distribution(...)``: one axis of ``n_samples`` seeded samples.

Each combination of rows then passes conditional parameters, computed parameters, constraints
and exclusions, which see the merged view (:class:`ConfigView`); :mod:`.grid_expansion` says
how. Counting runs the same generator, so ``get_parameter_count()`` always equals what
``generate_permutations()`` yields.

This module owns the grid's building API. The parts, the rows they expand to and the keys they
claim live in :mod:`.grid_axes`, the expansion into combinations in :mod:`.grid_expansion`, the
grid as plain data (:data:`GRID_SECTIONS`) in :mod:`.grid_data`, distributions in
:mod:`.distributions`, and dotted-path helpers and :class:`ConfigView` in :mod:`.paths` (all
PURE); the names of the last three are re-exported here.

Example:
    >>> grid = ParameterGrid("lr").add_parameter("optimizer.lr", [0.1, 0.01])
    >>> grid = grid.add_parameter("model.hidden", [32, 64])
    >>> grid.get_parameter_count()
    4
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from model_training_framework.config.distributions import (
    DISTRIBUTIONS,
    ChoiceDistribution,
    Distribution,
    LogUniformDistribution,
    NormalDistribution,
    UniformDistribution,
)
from model_training_framework.config.grid_axes import (
    Axis,
    GridParts,
    as_value_list,
    build_conditional,
    distribution_axis,
    rows_from_columns,
    rows_from_dicts,
    rows_from_tuples,
)
from model_training_framework.config.grid_data import (
    GRID_SECTIONS,
    add_sections,
    check_sections,
    parts_to_data,
    unserialisable_parts,
)
from model_training_framework.config.grid_expansion import expand_parts
from model_training_framework.config.paths import (
    ConfigView,
    ViewPredicate,
    get_path,
    merge_parameters,
    set_path,
    values_match,
)
from model_training_framework.errors import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "GRID_SECTIONS",
    "ChoiceDistribution",
    "ConfigView",
    "Distribution",
    "LogUniformDistribution",
    "NormalDistribution",
    "ParameterGrid",
    "UniformDistribution",
    "get_path",
    "merge_parameters",
    "set_path",
    "values_match",
]


# ----------------------------------------------------------------------------- the grid
class ParameterGrid:
    """A named set of parameter axes, conditions, computed values and filters.

    Every ``add_*`` method returns the grid, so calls chain. Keys are dotted paths into the
    nested config. A key may belong to only one axis (linked alternatives may share keys among
    themselves), and a key may not be a section of another swept key (``model`` and
    ``model.hidden``).

    Args:
        name: Grid name (used in summaries and error messages).
        description: Free text.

    Example:
        >>> grid = (ParameterGrid("opt")
        ...         .add_parameter("optimizer.name", ["sgd", "adamw"])
        ...         .add_conditional_parameter("optimizer.momentum", [0.9, 0.99],
        ...                                    when={"optimizer.name": "sgd"}))
        >>> grid.get_parameter_count()
        3
    """

    def __init__(self, name: str, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"ParameterGrid needs a non-empty name, got {name!r}")
        self.name = name
        self.description = description
        self._parts = GridParts()

    # ---------------------------------------------------------------- building
    def add_parameter(self, key: str, values: Sequence[Any]) -> ParameterGrid:
        """Sweep ``key`` over ``values`` (one axis).

        Raises:
            ConfigError: ``key`` is not a dotted path, is already swept, or ``values`` is empty
                or not a list.
        """
        rows = [{key: value} for value in as_value_list(key, values)]
        self._parts.add_axis(Axis("parameter", rows, {"key": key}), [key], self.name)
        return self

    def add_nested_parameter(
        self, key_path: str | Sequence[str], values: Sequence[Any]
    ) -> ParameterGrid:
        """Sweep the nested key ``key_path`` over ``values``: :meth:`add_parameter` under the
        name the reference framework used.

        Args:
            key_path: A dotted path (``"model.encoder.dim"``) or its parts
                (``["model", "encoder", "dim"]``).
            values: Values to sweep.

        Raises:
            ConfigError: As :meth:`add_parameter`; also for an empty path or a part that is not
                a non-empty string.
        """
        if isinstance(key_path, str):
            return self.add_parameter(key_path, values)
        parts = list(key_path) if isinstance(key_path, Sequence) else []
        if not parts or not all(isinstance(part, str) and part for part in parts):
            raise ConfigError(
                f"key_path must be a dotted string or a list of key names, got {key_path!r}"
            )
        return self.add_parameter(".".join(parts), values)

    def add_linked_parameters(
        self,
        keys_or_values: Sequence[str] | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        value_tuples: Sequence[Sequence[Any]] | None = None,
    ) -> ParameterGrid:
        """Add a group of keys that vary together; several groups are alternatives.

        Three spellings of one group:
        ``add_linked_parameters(["optimizer.lr", "training.max_epochs"], [(0.1, 1), (0.01, 2)])``,
        ``add_linked_parameters({"optimizer.lr": [0.1, 0.01], "training.max_epochs": [1, 2]})``
        or ``add_linked_parameters([{"optimizer.lr": 0.1, ...}, {...}])``. With a list of keys,
        a row may also be a dict, matched by key in any order (``{"training.max_epochs": 1,
        "optimizer.lr": 0.1}``); it must have exactly those keys. Rows of every linked
        group of this grid form one axis (concatenated), which multiplies the other axes.

        Raises:
            ConfigError: Rows do not match the keys, lists differ in length, or a key is swept
                by another axis.
        """
        if value_tuples is not None:
            rows = rows_from_tuples([str(k) for k in keys_or_values], value_tuples)
        elif isinstance(keys_or_values, Mapping):
            rows = rows_from_columns(keys_or_values)
        else:
            rows = rows_from_dicts(keys_or_values, "linked parameters")  # type: ignore[arg-type]
        keys = list(dict.fromkeys(key for row in rows for key in row))
        parts = self._parts
        if parts.linked is None:
            parts.linked = Axis("linked", [], {"groups": []})
            parts.add_axis(parts.linked, keys, self.name)
        else:
            parts.check_new_keys(keys, self.name, ignore=parts.linked)
        parts.linked.rows.extend(rows)
        parts.linked.spec["groups"].append(copy.deepcopy(rows))
        return self

    def add_parameter_sets(self, sets: Sequence[Mapping[str, Any]]) -> ParameterGrid:
        """Add one axis whose rows are whole sets of values (``[{"model.size": "s", ...}, ...]``).

        Unlike linked groups, each call is a separate axis, multiplied with the others.

        Raises:
            ConfigError: ``sets`` is empty or holds a non-mapping, or a key is already swept.
        """
        rows = rows_from_dicts(sets, "parameter sets")
        keys = list(dict.fromkeys(key for row in rows for key in row))
        self._parts.add_axis(Axis("sets", rows, {"sets": copy.deepcopy(rows)}), keys, self.name)
        return self

    def add_parameter_distribution(
        self,
        key: str,
        distribution: Distribution | str,
        n_samples: int,
        seed: int = 0,
        **params: Any,
    ) -> ParameterGrid:
        """Sweep ``key`` over ``n_samples`` values drawn from a distribution, reproducibly.

        The generator is ``random.Random(f"{seed}:{key}")``: the same seed gives the same values
        on every run and machine (so experiment names, and with them auto-resume, are stable);
        different keys with the same seed get independent draws.

        Args:
            key: Dotted config key.
            distribution: ``"uniform"`` (low, high), ``"loguniform"`` (low, high), ``"normal"``
                (mean, std), ``"choice"`` (choices, weights=None), or a :class:`Distribution`.
            n_samples: Number of values (>= 1).
            seed: Integer seed (default 0).
            **params: The distribution's parameters.

        A ``"choice"`` distribution draws with replacement, so ``n_samples`` may exceed the
        number of choices. A value drawn twice makes identical experiments, which the sweep
        refuses like any other name clash (``ParameterGridSearch.generate_experiments``).

        Raises:
            ConfigError: Unknown distribution, bad parameters or ``n_samples < 1``.
        """
        axis = distribution_axis(key, distribution, n_samples, seed, params)
        self._parts.add_axis(axis, [key], self.name)
        return self

    def add_conditional_parameter(
        self,
        key: str,
        values: Sequence[Any],
        when: Mapping[str, Any] | None = None,
        when_func: ViewPredicate | None = None,
    ) -> ParameterGrid:
        """Sweep ``key`` over ``values`` only in combinations where a condition holds.

        A matching combination is multiplied by ``len(values)``; others are kept once, without
        ``key``. Conditions see the merged view (base config + this combination, including
        earlier conditional parameters), so they may test base-config keys.

        Args:
            key: Dotted config key.
            values: Values to sweep.
            when: Dotted key -> required value (all must match; a missing key never matches).
            when_func: ``fn(view) -> bool`` instead of ``when``.

        Raises:
            ConfigError: Not exactly one of ``when``/``when_func``, empty values, or ``key`` is
                swept by an axis. (Several conditionals may share a key; a combination where two
                of them apply is an error at generation.)
        """
        conditional = build_conditional(key, values, when, when_func)
        self._parts.check_new_keys([key], self.name, allow_conditional=True)
        self._parts.conditionals.append(conditional)
        return self

    def add_computed_parameter(self, key: str, fn: Callable[[ConfigView], Any]) -> ParameterGrid:
        """Set ``key`` to ``fn(view)`` in every combination (after conditionals).

        Computed values are derived from the others, so they appear in the experiment's config
        and listing but not in its name.

        Raises:
            ConfigError: ``fn`` is not callable or ``key`` is already swept.
        """
        if not callable(fn):
            raise ConfigError(f"computed parameter {key!r} needs a callable, got {fn!r}")
        self._parts.check_new_keys([key], self.name)
        self._parts.computed.append((key, fn))
        return self

    def add_constraint(self, fn: ViewPredicate) -> ParameterGrid:
        """Keep only combinations where ``fn(view)`` is true (checked after computed values).

        Raises:
            ConfigError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise ConfigError(f"add_constraint needs a callable fn(view) -> bool, got {fn!r}")
        self._parts.constraints.append(fn)
        return self

    def exclude_combinations(
        self, combinations: Sequence[Mapping[str, Any] | ViewPredicate]
    ) -> ParameterGrid:
        """Drop combinations matching any rule: a mapping (all keys equal) or ``fn(view)``.

        Raises:
            ConfigError: A rule is neither a non-empty mapping nor callable.
        """
        if isinstance(combinations, (str, bytes, Mapping)) or callable(combinations):
            combinations = [combinations]  # type: ignore[list-item]
        for rule in combinations:
            if not callable(rule) and not (isinstance(rule, Mapping) and rule):
                raise ConfigError(
                    f"exclusion {rule!r} must be a non-empty mapping of key -> value or a "
                    "callable fn(view) -> bool"
                )
            self._parts.exclusions.append(rule if callable(rule) else copy.deepcopy(dict(rule)))
        return self

    # ---------------------------------------------------------------- keys
    def swept_keys(self) -> list[str]:
        """Keys that name experiments: axes and conditional keys (not computed), in order."""
        return self._parts.swept_keys()

    def computed_keys(self) -> list[str]:
        """Keys set by computed parameters, in the order they were added."""
        return self._parts.computed_keys()

    def get_parameter_names(self) -> list[str]:
        """Every key this grid sets: the swept keys (:meth:`swept_keys`), then the computed ones.

        Example:
            >>> ParameterGrid("g").add_parameter("optimizer.lr", [0.1]).get_parameter_names()
            ['optimizer.lr']
        """
        return self.swept_keys() + self.computed_keys()

    # ---------------------------------------------------------------- expansion
    def generate_permutations(
        self, base_config: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield each combination as dotted key -> value (swept, conditional and computed).

        Args:
            base_config: Nested base config that conditions, computed values, constraints and
                exclusions see under the swept values (default: empty).

        Yields:
            Fresh dicts (values deep-copied), in a deterministic order (:mod:`.grid_expansion`).

        Raises:
            ConfigError: Two conditional parameters for one key apply to the same combination.
        """
        return expand_parts(self._parts, base_config or {}, self.name)

    def get_parameter_count(self, base_config: Mapping[str, Any] | None = None) -> int:
        """Return how many combinations :meth:`generate_permutations` yields for ``base_config``."""
        return sum(1 for _ in self.generate_permutations(base_config))

    # ---------------------------------------------------------------- saving
    def unserialisable_parts(self) -> list[str]:
        """Describe every part that is a Python callable and so cannot be written to a file."""
        return unserialisable_parts(self._parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the grid as plain data (the ``grids:`` entry of a grid file, :mod:`.grid_data`).

        Raises:
            ConfigError: The grid holds callables (listed in the message); they cannot be saved.
        """
        return parts_to_data(self.name, self.description, self._parts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterGrid:
        """Build a grid from :meth:`to_dict` output or the grid part of a YAML grid file.

        Raises:
            ConfigError: Unknown sections (with the valid ones listed) or invalid entries.
        """
        check_sections(data)
        return add_sections(cls(data.get("name", ""), data.get("description", "") or ""), data)

    def __repr__(self) -> str:
        return f"ParameterGrid(name={self.name!r}, keys={self.swept_keys() + self.computed_keys()})"
