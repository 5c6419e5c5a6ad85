"""What the launchers need from an experiment, and its directory layout.

Accepts an ``ExperimentConfig`` (or any object with ``experiment_name``, ``slurm`` and
``to_yaml(path)``) or a plain dict with ``experiment_name`` (and optionally ``slurm``).
Everything is validated before any file is written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import SlurmConfig
from model_training_framework.experiment.manager import write_config_file

__all__ = [
    "SLURM_DEFAULTS",
    "ExperimentPaths",
    "ExperimentSpec",
    "prepare_experiment_dirs",
    "refuse_foreign_runs",
    "run_roots_inside",
    "to_experiment_specs",
    "with_run_roots_under",
]

# A dict experiment gets the resources an ExperimentConfig gets: SlurmConfig declares them.
SLURM_DEFAULTS: dict[str, object] = SlurmConfig().model_dump()
# What a run leaves in its run directory (the trainer's latest pointer, the entry's records).
_RUN_FILES = ("latest.ckpt", "experiment.yaml", "status.json")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment: its name, slurm resources, and the original object."""

    name: str
    slurm: Mapping[str, object]
    source: object

    def write_config(self, path: Path) -> None:
        """Write the experiment's config as YAML to ``path`` (atomically, plain YAML).

        Raises:
            ConfigError: a dict experiment holds a value plain YAML cannot represent.
        """
        if isinstance(self.source, Mapping):
            write_config_file(path, self.source)
        else:
            self.source.to_yaml(path)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ExperimentPaths:
    """Absolute paths of one experiment directory."""

    experiment_dir: Path
    config_path: Path
    script_path: Path
    log_dir: Path
    code_version_path: Path

    @classmethod
    def under(cls, experiments_dir: Path, name: str) -> ExperimentPaths:
        """Paths of experiment ``name`` below ``experiments_dir``."""
        root = Path(experiments_dir).resolve() / name
        return cls(
            root,
            root / "config.yaml",
            root / "job.sbatch.sh",
            root / "logs",
            root / "code_version.json",
        )


def _validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"experiment_name {name!r} cannot name a directory: use 1-200 characters from "
            "[A-Za-z0-9._-], not starting with '.' (e.g. 'resnet_lr0.1')"
        )
    return name


def _slurm_section(raw: object, name: str) -> dict[str, object]:
    if raw is None:
        raw = {}
    elif hasattr(raw, "model_dump"):
        raw = raw.model_dump()
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"experiment {name!r}: slurm section must be a mapping, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(SLURM_DEFAULTS))
    if unknown:
        raise ValueError(
            f"experiment {name!r}: unknown slurm key(s) {unknown}; known keys: {sorted(SLURM_DEFAULTS)}"
        )
    section = {**SLURM_DEFAULTS, **raw}
    extra = section["extra_directives"] or []
    if isinstance(extra, str) or not all(isinstance(item, str) for item in extra):
        raise TypeError(
            f"experiment {name!r}: slurm.extra_directives must be a list of strings, got {extra!r}"
        )
    return section


def _to_spec(experiment: object) -> ExperimentSpec:
    if isinstance(experiment, Mapping):
        name = _validate_name(experiment.get("experiment_name"))
        return ExperimentSpec(name, _slurm_section(experiment.get("slurm"), name), experiment)
    if not hasattr(experiment, "experiment_name") or not hasattr(experiment, "to_yaml"):
        raise TypeError(
            f"expected an ExperimentConfig or a dict with 'experiment_name', got {type(experiment).__name__}"
        )
    name = _validate_name(experiment.experiment_name)
    return ExperimentSpec(
        name, _slurm_section(getattr(experiment, "slurm", None), name), experiment
    )


def to_experiment_specs(experiments: Sequence[object]) -> list[ExperimentSpec]:
    """Validate experiments: names usable as directories and unique, slurm sections known.

    Raises:
        ValueError: empty input, invalid or duplicate names (or names that differ only in
            case), unknown slurm keys.
        TypeError: not an experiment.
    """
    if (
        isinstance(experiments, Mapping)
        or not isinstance(experiments, Sequence)
        or isinstance(experiments, str)
    ):
        raise TypeError(f"expected a list of experiments, got {type(experiments).__name__}")
    if not experiments:
        raise ValueError("no experiments given; pass a non-empty list")
    specs = [_to_spec(experiment) for experiment in experiments]
    seen: set[str] = set()
    duplicates = sorted({spec.name for spec in specs if spec.name in seen or seen.add(spec.name)})
    if duplicates:
        raise ValueError(f"experiment names must be unique within a batch; repeated: {duplicates}")
    _refuse_case_twins([spec.name for spec in specs])
    return specs


def _refuse_case_twins(names: Sequence[str]) -> None:
    """Names that differ only in case are one directory on macOS and Windows filesystems."""
    by_lower: dict[str, str] = {}
    for name in names:
        twin = by_lower.setdefault(name.lower(), name)
        if twin != name:
            raise ValueError(
                f"experiment names {twin!r} and {name!r} differ only in case: on a "
                "case-insensitive filesystem (macOS, Windows) they are one directory; rename one"
            )


def _checkpoint_root(source: object) -> str | None:
    """The experiment's ``checkpoint.root_dir`` (None when it has none)."""
    if isinstance(source, Mapping):
        checkpoint = source.get("checkpoint")
        root = checkpoint.get("root_dir") if isinstance(checkpoint, Mapping) else None
    else:
        root = getattr(getattr(source, "checkpoint", None), "root_dir", None)
    return root if isinstance(root, str) else None


def _relative_root(source: object) -> str | None:
    """The experiment's ``checkpoint.root_dir`` when it is a relative path, else None."""
    root = _checkpoint_root(source)
    return root if root is not None and not Path(root).is_absolute() else None


def _with_root(source: object, root: str) -> object:
    if isinstance(source, Mapping):
        copied = copy.deepcopy(dict(source))
        copied["checkpoint"]["root_dir"] = root
        return copied
    copied = source.model_copy(deep=True)  # type: ignore[attr-defined]
    copied.checkpoint.root_dir = root
    return copied


def with_run_roots_under(
    specs: Sequence[ExperimentSpec], project_root: Path
) -> list[ExperimentSpec]:
    """Make each relative ``checkpoint.root_dir`` absolute against ``project_root``.

    Jobs run in a code snapshot, so a relative root would put the run directories inside it,
    and a resubmission (a new snapshot) would not find the checkpoints. The caller's
    experiments are left unchanged.
    """
    result = []
    for spec in specs:
        root = _relative_root(spec.source)
        if root is not None:
            absolute = str((Path(project_root) / root).resolve())
            spec = replace(spec, source=_with_root(spec.source, absolute))
        result.append(spec)
    return result


def run_roots_inside(specs: Sequence[ExperimentSpec], project_root: Path) -> list[Path]:
    """The experiments' checkpoint roots that lie strictly inside ``project_root``.

    The launchers leave them out of the code snapshot: checkpoints are not code, and copying
    them into every snapshot (and its patch) would duplicate them at each submission.
    """
    project = Path(project_root).resolve()
    roots = {
        (project / root).resolve() for spec in specs if (root := _checkpoint_root(spec.source))
    }
    return sorted(root for root in roots if root != project and root.is_relative_to(project))


def refuse_foreign_runs(specs: Sequence[ExperimentSpec], experiments_dir: Path) -> None:
    """Refuse experiments whose run directory holds a run this experiments dir did not create.

    A name is built from the base name and the swept values, so another sweep (another base
    config, another experiments dir) or an ``mtf train`` run can give the same run directory
    ``<checkpoint.root_dir>/<name>``; the experiment would resume that run as its own. A run
    directory belongs to the experiments dir that holds ``<name>/config.yaml`` (a rerun).

    Raises:
        ConfigError: naming the run directory and the fixes, before anything is written.
    """
    for spec in specs:
        root = _checkpoint_root(spec.source)
        run_dir = None if root is None else Path(root) / spec.name
        if run_dir is None or not any((run_dir / name).exists() for name in _RUN_FILES):
            continue
        if ExperimentPaths.under(experiments_dir, spec.name).config_path.is_file():
            continue
        raise ConfigError(
            f"experiment {spec.name!r}: its run directory {run_dir} already holds a run that is "
            f"not an experiment of {Path(experiments_dir).resolve()} (another sweep or an 'mtf "
            "train' run has the same name), and it would resume that run as its own; give the "
            "base config another experiment_name or checkpoint.root_dir, or continue that run "
            "from the experiments directory that created it"
        )


def prepare_experiment_dirs(
    specs: Sequence[ExperimentSpec], paths: Sequence[ExperimentPaths]
) -> None:
    """Create each experiment directory, its ``logs/`` and ``config.yaml``."""
    for spec, path in zip(specs, paths, strict=True):
        path.log_dir.mkdir(parents=True, exist_ok=True)
        spec.write_config(path.config_path)
