"""Parameter grid search: base config x grids -> named, validated experiment configs.

The expansion and naming are pure (:mod:`~model_training_framework.config.grid`, :mod:`~model_training_framework.config.naming`); this module adds the base
config, :class:`~model_training_framework.experiment.config.ExperimentConfig` validation and the
files a sweep writes: the grid file (``save_grid_config``), a summary and the manifest that maps
each experiment name to its full config. See NOTE [experiment names] in :mod:`~model_training_framework.config.naming` for why a
name is stable and unique.

Example:
    >>> from model_training_framework.config.grid import ParameterGrid
    >>> search = ParameterGridSearch({"experiment_name": "base"})
    >>> grid = ParameterGrid("lr").add_parameter("optimizer.lr", [0.001, 0.01])
    >>> [name for name, _ in describe_experiments(search.add_grid(grid))]
    ['base_lr-0.001', 'base_lr-0.01']
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from model_training_framework.config.grid import ParameterGrid, merge_parameters
from model_training_framework.config.legacy import EXPERIMENT_RULES, migrate_legacy_keys
from model_training_framework.config.legacy_overrides import migrate_overrides, with_old_spellings
from model_training_framework.config.naming import NamingStrategy, name_experiments
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.experiment.grid_yaml import build_grid_document, read_grid_document
from model_training_framework.experiment.manager import read_config_file, write_config_file
from model_training_framework.text import counted

__all__ = [
    "MANIFEST_FILENAME",
    "ParameterGridSearch",
    "PlannedExperiment",
    "describe_experiments",
    "load_grid_search",
]

logger = logging.getLogger(__name__)

MANIFEST_FILENAME = "manifest.yaml"
_DEFAULT_BASE_NAME = "experiment"
_NAME_KEY = "experiment_name"


@dataclass(frozen=True)
class PlannedExperiment:
    """One experiment of a sweep before validation.

    Attributes:
        name: Experiment name (also its run directory).
        grid_name: Name of the grid it came from.
        parameters: Dotted key -> value set by the grid (computed values included).
        config: Full nested config dict with ``experiment_name`` set to ``name``.
    """

    name: str
    grid_name: str
    parameters: dict[str, Any]
    config: dict[str, Any]


class ParameterGridSearch:
    """A base config plus grids; names and builds every experiment of the sweep.

    Args:
        base_config: An :class:`ExperimentConfig` or a nested mapping (validated when the
            experiments are generated). Its ``experiment_name`` is the base of every name.
        clock: Returns "now" for TIMESTAMP_BASED names (default ``datetime.now``); read once per
            search object, so the manifest and the experiments share the timestamp.

    Example:
        >>> search = ParameterGridSearch({"experiment_name": "demo"})
        >>> search.set_naming_strategy("hash_based").naming_strategy.value
        'hash_based'
    """

    def __init__(
        self,
        base_config: ExperimentConfig | Mapping[str, Any],
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(base_config, ExperimentConfig):
            self._base_config = base_config.to_dict()
        elif isinstance(base_config, Mapping):
            # Renamed keys first, so that a swept new key never meets the base's old one.
            self._base_config = migrate_legacy_keys(base_config, EXPERIMENT_RULES)
        else:
            raise ConfigError(
                f"ParameterGridSearch needs an ExperimentConfig or a mapping as base_config, "
                f"got {type(base_config).__name__}"
            )
        # what conditions, exclusions and constraints see: the base, old key names readable too
        self._view_base = with_old_spellings(self._base_config, EXPERIMENT_RULES)
        self.grids: list[ParameterGrid] = []
        self.naming_strategy = NamingStrategy.PARAMETER_BASED
        self._clock = clock or datetime.now
        self._sweep_time: datetime | None = None

    @property
    def base_config(self) -> dict[str, Any]:
        """A copy of the base config as a nested dict."""
        return copy.deepcopy(self._base_config)

    @property
    def base_name(self) -> str:
        """The base config's ``experiment_name`` (``"experiment"`` when unset)."""
        return str(self._base_config.get(_NAME_KEY) or _DEFAULT_BASE_NAME)

    def add_grid(self, grid: ParameterGrid) -> ParameterGridSearch:
        """Add a grid; returns the search for chaining.

        Raises:
            ConfigError: ``grid`` is not a ParameterGrid or its name is already used.
        """
        if not isinstance(grid, ParameterGrid):
            raise ConfigError(f"add_grid needs a ParameterGrid, got {type(grid).__name__}")
        if any(existing.name == grid.name for existing in self.grids):
            raise ConfigError(f"a grid named {grid.name!r} is already in this search; rename one")
        self.grids.append(grid)
        return self

    def set_naming_strategy(self, strategy: NamingStrategy | str) -> ParameterGridSearch:
        """Choose how experiments are named (enum or its name); returns the search.

        Raises:
            ConfigError: Unknown strategy.
        """
        self.naming_strategy = NamingStrategy.parse(strategy)
        return self

    # ---------------------------------------------------------------- expansion
    def _now(self) -> datetime:
        if self._sweep_time is None:
            self._sweep_time = self._clock()
        return self._sweep_time

    def plan(self) -> list[PlannedExperiment]:
        """Expand every grid over the base config and name the experiments.

        Returns:
            One entry per experiment, grids in the order added.

        Raises:
            ConfigError: Two experiments get the same name, a grid sweeps ``experiment_name``
                (the sweep sets it), or a grid fails to expand.
        """
        for grid in self.grids:
            if _NAME_KEY in grid.swept_keys() + grid.computed_keys():
                raise ConfigError(
                    f"grid {grid.name!r} sweeps {_NAME_KEY!r}, which the sweep sets to each "
                    "experiment's generated name; set the base name in the base config instead"
                )
        expanded = [
            (grid, parameters)
            for grid in self.grids
            for parameters in grid.generate_permutations(self._view_base)
        ]
        naming_values = [
            {k: v for k, v in parameters.items() if k not in grid.computed_keys()}
            for grid, parameters in expanded
        ]
        names = name_experiments(
            self.base_name, naming_values, self.naming_strategy, clock=self._now
        )
        planned = []
        for name, (grid, parameters) in zip(names, expanded, strict=True):
            swept = migrate_overrides(parameters, EXPERIMENT_RULES)  # a swept old key
            config = merge_parameters(self._base_config, swept)
            config[_NAME_KEY] = name
            planned.append(PlannedExperiment(name, grid.name, parameters, config))
        return planned

    def get_total_experiments(self) -> int:
        """Return the number of experiments (the sum of the grids' counts over the base)."""
        return sum(grid.get_parameter_count(self._view_base) for grid in self.grids)

    def generate_experiments(self) -> list[ExperimentConfig]:
        """Return one validated :class:`ExperimentConfig` per experiment, named.

        Raises:
            ConfigError: A name clash, or an experiment's config is invalid (the message names
                the experiment and its swept values).
        """
        return [self._validate(planned) for planned in self.plan()]

    @staticmethod
    def _validate(planned: PlannedExperiment) -> ExperimentConfig:
        try:
            return ExperimentConfig.from_dict(planned.config)
        except ConfigError as err:
            raise ConfigError(
                f"experiment {planned.name!r} (grid {planned.grid_name!r}, values "
                f"{planned.parameters!r}) is not a valid config:\n{err}"
            ) from err

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """Return the grid file content (inline base config, naming, grids).

        Raises:
            ConfigError: A grid holds callables (listed), which a file cannot hold.
        """
        return build_grid_document(self._base_config, self.naming_strategy, self.grids)

    def save_grid_config(self, path: str | Path) -> Path:
        """Write the sweep definition to a YAML/JSON file that :meth:`load_grid_config` reads.

        Distributions are saved as their spec (kind, seed, parameters), so loading draws the
        same values again.

        Raises:
            ConfigError: A grid holds callables (named in the message); nothing is written.
        """
        return write_config_file(path, self.to_dict())

    @classmethod
    def load_grid_config(
        cls, path: str | Path, *, clock: Callable[[], datetime] | None = None
    ) -> ParameterGridSearch:
        """Read a grid file (the format of :mod:`.grid_yaml`) into a search.

        Raises:
            ConfigError: Unreadable or invalid file.
        """
        document = read_grid_document(path)
        search = cls(document.base_config, clock=clock).set_naming_strategy(document.naming)
        for grid in document.grids:
            search.add_grid(grid)
        return search

    def summary(self) -> dict[str, Any]:
        """Return plain data describing the sweep: counts per grid and every name with its values."""
        planned = self.plan()
        return {
            "base_experiment_name": self.base_name,
            "naming": self.naming_strategy.value,
            "total_experiments": len(planned),
            "grids": [
                {
                    "name": grid.name,
                    "description": grid.description,
                    "num_experiments": sum(1 for p in planned if p.grid_name == grid.name),
                    "swept_keys": grid.swept_keys(),
                    "computed_keys": grid.computed_keys(),
                }
                for grid in self.grids
            ],
            "experiments": [
                {"name": p.name, "grid": p.grid_name, "parameters": p.parameters} for p in planned
            ],
        }

    def save_summary(self, path: str | Path) -> Path:
        """Write :meth:`summary` as YAML or JSON (by extension); returns the path."""
        return write_config_file(path, self.summary())

    def write_manifest(
        self,
        directory: str | Path,
        filename: str = MANIFEST_FILENAME,
        *,
        keep: Collection[str] = (),
    ) -> Path:
        """Write ``<directory>/manifest.yaml``: each experiment name -> grid, values, full config.

        Every config is validated first (nothing is written when one is invalid) and stored as
        ``ExperimentConfig.to_dict()``, defaults filled in. Experiments that another sweep
        (another grid name) wrote into the same directory stay in the manifest.

        Args:
            directory: the sweep's experiments directory.
            filename: the manifest's file name.
            keep: experiments whose files this run leaves as they are (``mtf sweep`` skips an
                experiment whose Slurm job is still queued or running): each keeps its entry
                as it was or, without one, records ``<directory>/<name>/config.yaml``, so the
                manifest describes the config that experiment runs, not the new one.

        Returns:
            The manifest path.

        Raises:
            ConfigError: A name clash, within this sweep or with an experiment of another grid
                in the manifest already there, a name that differs only in case from one in
                the manifest, or an invalid experiment config.
        """
        path = Path(directory) / filename
        planned = self.plan()
        earlier = _manifest_entries(path)
        _refuse_other_grids(planned, earlier, path)
        directory = Path(directory)
        entries = {
            **{
                name: entry
                for name, entry in earlier.items()
                if name not in {p.name for p in planned}
            },
            **{
                p.name: (p.name in keep and _kept_entry(p, earlier, directory))
                or {
                    "grid": p.grid_name,
                    "parameters": p.parameters,
                    "config": self._validate(p).to_dict(),
                }
                for p in planned
            },
        }
        manifest = {
            "naming": self.naming_strategy.value,
            "num_experiments": len(entries),
            "experiments": entries,
        }
        path = write_config_file(path, manifest)
        logger.info("wrote manifest of %s to %s", counted(len(entries), "experiment"), path)
        return path


def _manifest_entries(path: Path) -> dict[str, Any]:
    """The experiments listed in an existing manifest (empty when there is none)."""
    if not path.is_file():
        return {}
    experiments = read_config_file(path).get("experiments")
    return dict(experiments) if isinstance(experiments, Mapping) else {}


def _kept_entry(
    p: PlannedExperiment, earlier: Mapping[str, Any], directory: Path
) -> dict[str, Any] | None:
    """A left-alone experiment's manifest entry: the earlier one, else its config on disk."""
    entry = earlier.get(p.name)
    if isinstance(entry, Mapping):
        return dict(entry)
    on_disk = directory / p.name / "config.yaml"
    if not on_disk.is_file():
        return None
    return {"grid": p.grid_name, "parameters": p.parameters, "config": read_config_file(on_disk)}


def _refuse_other_grids(
    planned: list[PlannedExperiment], earlier: Mapping[str, Any], path: Path
) -> None:
    """Names depend on the base name and the swept values only, so another sweep into the same
    directory can give the same name; its experiment would replace this one's directory and
    resume its run. The grid name tells a rerun of the same sweep apart. A name that differs
    only in case from one in the manifest (``act-relu`` after ``act-ReLU``, from this grid
    edited or another) is that directory too on a case-insensitive filesystem."""
    by_lower = {name.lower(): name for name in earlier}
    for p in planned:
        entry, twin = earlier.get(p.name), by_lower.get(p.name.lower(), p.name)
        grid = entry.get("grid") if isinstance(entry, Mapping) else None
        if grid is not None and grid != p.grid_name:
            raise ConfigError(
                f"experiment {p.name!r} of grid {p.grid_name!r} has the name of an experiment of "
                f"grid {grid!r} already in {path.parent} (see {path.name}), and both would use "
                "one run directory; give this sweep's base config another experiment_name"
            )
        if twin != p.name:
            raise ConfigError(
                f"experiment {p.name!r} of grid {p.grid_name!r} differs only in case from "
                f"{twin!r}, already in {path.parent} (see {path.name}): on a case-insensitive "
                "filesystem (macOS, Windows) both are one directory; give this sweep's base "
                "config another experiment_name or use another experiments directory"
            )


def load_grid_search(
    path: str | Path, *, clock: Callable[[], datetime] | None = None
) -> ParameterGridSearch:
    """Load a sweep from a grid file (YAML or JSON); see :mod:`.grid_yaml` for the format.

    Args:
        path: The grid file.
        clock: Clock for TIMESTAMP_BASED names (tests inject one).

    Returns:
        The search, ready for ``generate_experiments()``.

    Raises:
        ConfigError: Unreadable or invalid file (the message names the file).
    """
    return ParameterGridSearch.load_grid_config(path, clock=clock)


def describe_experiments(search: ParameterGridSearch) -> list[tuple[str, dict[str, Any]]]:
    """Return (name, swept values) for every experiment, for listings such as ``--dry-run``.

    Raises:
        ConfigError: Two experiments get the same name.
    """
    return [(planned.name, planned.parameters) for planned in search.plan()]
