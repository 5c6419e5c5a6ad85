"""PURE: parameter grids over dotted config keys (standard library only).

A :class:`ParameterGrid` is a product of *axes*. Each axis is a list of rows; a row is a dict of
dotted key -> value applied together:

- ``add_parameter(key, values)``: one axis, one row per value;
- ``add_linked_parameters(...)``: rows whose keys vary together. Every linked group of a grid
  goes into one shared axis, so several linked groups are *alternatives* (their rows are
  concatenated), multiplied with the other axes;
- ``add_parameter_sets(sets)``: one axis per call, one row per set;
- ``add_parameter_distribution(...)``: one axis of ``n_samples`` seeded samples.

Each combination of rows then passes, in this order: conditional parameters (a matching
combination is multiplied by the conditional values), computed parameters, constraints and
exclusions. Conditions, computed values, constraints and exclusions see the merged view
(:class:`ConfigView`: the base config with this combination's values set). Counting runs the
same generator, so ``get_parameter_count()`` always equals what ``generate_permutations()``
yields.

Axes, conditional parameters and the rows they expand to live in :mod:`.grid_axes`,
distributions in :mod:`.distributions`, and dotted-path helpers and :class:`ConfigView` in
:mod:`.paths` (all PURE); the names of the last two are re-exported here.

Example:
    >>> grid = ParameterGrid("lr").add_parameter("optimizer.lr", [0.1, 0.01])
    >>> grid = grid.add_parameter("model.hidden", [32, 64])
    >>> grid.get_parameter_count()
    4
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from model_training_framework.config.distributions import (
    DISTRIBUTIONS,
    ChoiceDistribution,
    Distribution,
    LogUniformDistribution,
    NormalDistribution,
    UniformDistribution,
    build_distribution,
)
from model_training_framework.config.grid_axes import (
    Axis,
    Conditional,
    as_value_list,
    keys_related,
    matches_exclusion,
    rows_from_columns,
    rows_from_dicts,
    rows_from_tuples,
)
from model_training_framework.config.paths import (
    ConfigView,
    ViewPredicate,
    get_path,
    merge_parameters,
    set_path,
    split_key,
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
        self._axes: list[Axis] = []
        self._linked: Axis | None = None
        self._conditionals: list[Conditional] = []
        self._computed: list[tuple[str, Callable[[ConfigView], Any]]] = []
        self._constraints: list[ViewPredicate] = []
        self._exclusions: list[Mapping[str, Any] | ViewPredicate] = []

    # ---------------------------------------------------------------- building
    def add_parameter(self, key: str, values: Sequence[Any]) -> ParameterGrid:
        """Sweep ``key`` over ``values`` (one axis).

        Raises:
            ConfigError: ``key`` is not a dotted path, is already swept, or ``values`` is empty
                or not a list.
        """
        rows = [{key: value} for value in as_value_list(key, values)]
        self._add_axis(Axis("parameter", rows, {"key": key}), [key])
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
        if self._linked is None:
            self._linked = Axis("linked", [], {"groups": []})
            self._add_axis(self._linked, keys)
        else:
            self._check_new_keys(keys, ignore=self._linked)
        self._linked.rows.extend(rows)
        self._linked.spec["groups"].append(copy.deepcopy(rows))
        return self

    def add_parameter_sets(self, sets: Sequence[Mapping[str, Any]]) -> ParameterGrid:
        """Add one axis whose rows are whole sets of values (``[{"model.size": "s", ...}, ...]``).

        Unlike linked groups, each call is a separate axis, multiplied with the others.

        Raises:
            ConfigError: ``sets`` is empty or holds a non-mapping, or a key is already swept.
        """
        rows = rows_from_dicts(sets, "parameter sets")
        keys = list(dict.fromkeys(key for row in rows for key in row))
        self._add_axis(Axis("sets", rows, {"sets": copy.deepcopy(rows)}), keys)
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
        built = build_distribution(distribution, params)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"n_samples for {key!r} must be an int >= 1, got {n_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed for {key!r} must be an int, got {seed!r}")
        samples = built.sample(random.Random(f"{seed}:{key}"), n_samples)
        spec = {"key": key, "distribution": built.name, "n_samples": n_samples, "seed": seed}
        spec.update(built.params())
        self._add_axis(Axis("distribution", [{key: value} for value in samples], spec), [key])
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
        self._check_new_keys([key], allow_conditional=True)
        when_copy = None if when is None else copy.deepcopy(dict(when))
        self._conditionals.append(Conditional(key, tuple(value_list), when_copy, when_func))
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
        self._check_new_keys([key])
        self._computed.append((key, fn))
        return self

    def add_constraint(self, fn: ViewPredicate) -> ParameterGrid:
        """Keep only combinations where ``fn(view)`` is true (checked after computed values).

        Raises:
            ConfigError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise ConfigError(f"add_constraint needs a callable fn(view) -> bool, got {fn!r}")
        self._constraints.append(fn)
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
            self._exclusions.append(rule if callable(rule) else copy.deepcopy(dict(rule)))
        return self

    # ---------------------------------------------------------------- key bookkeeping
    def _add_axis(self, axis: Axis, keys: list[str]) -> None:
        self._check_new_keys(keys)
        self._axes.append(axis)

    def _claimed_keys(self, ignore: Axis | None = None) -> list[tuple[str, str]]:
        claimed = [
            (key, axis.kind) for axis in self._axes if axis is not ignore for key in axis.key_list()
        ]
        claimed += [(c.key, "conditional") for c in self._conditionals]
        claimed += [(key, "computed") for key, _ in self._computed]
        return claimed

    def _check_new_keys(
        self, keys: Sequence[str], ignore: Axis | None = None, allow_conditional: bool = False
    ) -> None:
        for key in keys:
            split_key(key)
        if len(set(keys)) != len(keys):
            raise ConfigError(f"keys {list(keys)} repeat within one call of grid {self.name!r}")
        for key in keys:
            for other, kind in self._claimed_keys(ignore):
                if allow_conditional and kind == "conditional" and key == other:
                    continue
                if keys_related(key, other):
                    raise ConfigError(
                        f"grid {self.name!r}: key {key!r} overlaps {other!r}, already swept as "
                        f"{kind} parameter; sweep each config key in one place only"
                    )

    def swept_keys(self) -> list[str]:
        """Keys that name experiments: axes and conditional keys (not computed), in order."""
        keys = [key for axis in self._axes for key in axis.key_list()]
        keys += [c.key for c in self._conditionals]
        return list(dict.fromkeys(keys))

    def computed_keys(self) -> list[str]:
        """Keys set by computed parameters, in the order they were added."""
        return [key for key, _ in self._computed]

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
            Fresh dicts (values deep-copied), in a deterministic order.

        Raises:
            ConfigError: Two conditional parameters for one key apply to the same combination.
        """
        base: Mapping[str, Any] = base_config or {}
        for rows in itertools.product(*(axis.rows for axis in self._axes)):
            combination: dict[str, Any] = {}
            for row in rows:
                combination.update(row)
            for expanded in self._expand_conditionals(combination, base, 0):
                complete = self._with_computed(expanded, base)
                if self._is_kept(ConfigView(base, complete)):
                    yield copy.deepcopy(complete)

    def get_parameter_count(self, base_config: Mapping[str, Any] | None = None) -> int:
        """Return how many combinations :meth:`generate_permutations` yields for ``base_config``."""
        return sum(1 for _ in self.generate_permutations(base_config))

    def _expand_conditionals(
        self, combination: dict[str, Any], base: Mapping[str, Any], position: int
    ) -> Iterator[dict[str, Any]]:
        if position == len(self._conditionals):
            yield combination
            return
        conditional = self._conditionals[position]
        if not conditional.applies(ConfigView(base, combination)):
            yield from self._expand_conditionals(combination, base, position + 1)
            return
        if conditional.key in combination:
            raise ConfigError(
                f"grid {self.name!r}: two conditional parameters for {conditional.key!r} apply "
                f"to the combination {combination!r}; make their conditions exclusive"
            )
        for value in conditional.values:
            yield from self._expand_conditionals(
                {**combination, conditional.key: value}, base, position + 1
            )

    def _with_computed(
        self, combination: dict[str, Any], base: Mapping[str, Any]
    ) -> dict[str, Any]:
        complete = dict(combination)
        for key, fn in self._computed:
            complete[key] = fn(ConfigView(base, complete))
        return complete

    def _is_kept(self, view: ConfigView) -> bool:
        if not all(constraint(view) for constraint in self._constraints):
            return False
        return not any(matches_exclusion(rule, view) for rule in self._exclusions)

    # ---------------------------------------------------------------- saving
    def unserialisable_parts(self) -> list[str]:
        """Describe every part that is a Python callable and so cannot be written to a file."""
        parts = [
            f"conditional parameter {c.key!r} (when_func)"
            for c in self._conditionals
            if c.when_func
        ]
        parts += [f"computed parameter {key!r}" for key, _ in self._computed]
        parts += [f"constraint #{i}" for i, _ in enumerate(self._constraints)]
        parts += [
            f"exclusion #{i} (a callable)" for i, r in enumerate(self._exclusions) if callable(r)
        ]
        return parts

    def to_dict(self) -> dict[str, Any]:
        """Return the grid as plain data (the ``grids:`` entry of a grid file).

        Raises:
            ConfigError: The grid holds callables (listed in the message); they cannot be saved.
        """
        parts = self.unserialisable_parts()
        if parts:
            raise ConfigError(
                f"grid {self.name!r} cannot be saved: {', '.join(parts)} are Python callables, "
                "which a grid file cannot hold; use when={...} and exclusion mappings, or keep "
                "this grid in Python"
            )
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        data["parameters"] = {
            a.spec["key"]: [r[a.spec["key"]] for r in a.rows]
            for a in self._axes
            if a.kind == "parameter"
        }
        data["linked"] = self._linked.spec["groups"] if self._linked else []
        data["parameter_sets"] = [a.spec["sets"] for a in self._axes if a.kind == "sets"]
        data["distributions"] = [a.spec for a in self._axes if a.kind == "distribution"]
        data["conditional"] = [
            {"key": c.key, "values": list(c.values), "when": c.when} for c in self._conditionals
        ]
        data["exclude"] = list(self._exclusions)
        return copy.deepcopy({key: value for key, value in data.items() if value or key == "name"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterGrid:
        """Build a grid from :meth:`to_dict` output or the grid part of a YAML grid file.

        Raises:
            ConfigError: Unknown sections (with the valid ones listed) or invalid entries.
        """
        unknown = sorted(set(data) - GRID_SECTIONS)
        if unknown:
            raise ConfigError(
                f"grid sections {unknown} are unknown; valid sections: {sorted(GRID_SECTIONS)}"
            )
        grid = cls(data.get("name", ""), data.get("description", "") or "")
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

    def __repr__(self) -> str:
        return f"ParameterGrid(name={self.name!r}, keys={self.swept_keys() + self.computed_keys()})"


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
