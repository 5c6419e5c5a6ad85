"""``mtf resume NAME``: continue an experiment from its latest checkpoint, on this machine.

NAME is an experiment name or a run directory. The experiment's config is looked up in this
order: ``NAME`` itself when it is a run directory (its ``experiment.yaml``), a sweep
experiment ``<experiments dir>/**/NAME/config.yaml``, then the run directory
``<runs dir>/NAME/experiment.yaml`` written by ``mtf train``. Training continues from the run's
latest checkpoint; it fails when there is no checkpoint. ``--checkpoint PATH`` gives a starting
checkpoint for a run that has none of its own yet: once the run has saved a checkpoint, its own
latest wins (a warning says so), so repeating the command never throws progress away. To
resume a Slurm sweep on the cluster, submit it again (``mtf sweep --slurm``): each job resumes
from its own latest checkpoint.
"""

from __future__ import annotations

import argparse
import difflib
import logging
from pathlib import Path

__all__ = ["add_parser", "find_experiment_config", "run_resume"]

logger = logging.getLogger(__name__)


def find_experiment_config(name: str, experiments_dir: Path, runs_dir: Path) -> Path:
    """Locate the config of experiment ``name`` (see the module docstring for the order).

    Raises:
        FileNotFoundError: nothing found (the message lists where it looked).
        ValueError: several sweep experiments share the name (the message lists them).
    """
    from model_training_framework.experiment.entry import EXPERIMENT_RECORD

    as_path = Path(name)
    if (as_path / EXPERIMENT_RECORD).is_file():
        return as_path / EXPERIMENT_RECORD
    candidates = (
        sorted(p for p in experiments_dir.rglob(f"{name}/config.yaml") if p.parent.name == name)
        if experiments_dir.is_dir()
        else []
    )
    if len(candidates) > 1:
        listed = ", ".join(str(p.parent) for p in candidates)
        raise ValueError(
            f"several experiments are named {name!r}: {listed}; pass the sweep's folder with "
            "--experiments-dir"
        )
    if candidates:
        return candidates[0]
    record = runs_dir / name / EXPERIMENT_RECORD
    if record.is_file():
        return record
    raise FileNotFoundError(
        f"no experiment {name!r}{_close_names_hint(name, experiments_dir, runs_dir)}: looked for "
        f"{experiments_dir}/**/{name}/config.yaml and {record}; pass --experiments-dir or "
        "--runs-dir, or the run directory itself"
    )


def _close_names_hint(name: str, experiments_dir: Path, runs_dir: Path) -> str:
    """``" (did you mean 'a' or 'b'?)"`` for the known experiment names close to ``name``."""
    from model_training_framework.experiment.entry import EXPERIMENT_RECORD

    known = {p.parent.name for p in experiments_dir.rglob("*/config.yaml")}
    known |= {p.parent.name for p in runs_dir.glob(f"*/{EXPERIMENT_RECORD}")}
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return " (did you mean " + " or ".join(f"'{c}'" for c in sorted(close)) + "?)" if close else ""


def run_resume(name: str, experiments_dir: Path, runs_dir: Path, checkpoint: str | None) -> int:
    """Resume experiment ``name``; returns the exit code."""
    from model_training_framework.experiment.config import ExperimentConfig
    from model_training_framework.experiment.entry import add_import_paths, run_experiment
    from model_training_framework.experiment.exit_codes import exit_code_for
    from model_training_framework.text import counted

    config_path = find_experiment_config(name, experiments_dir, runs_dir)
    add_import_paths(config_path)
    config = ExperimentConfig.from_yaml(config_path)
    run_dir = Path(config.checkpoint.root_dir) / config.experiment_name
    if checkpoint is None and not run_dir.is_dir():
        raise FileNotFoundError(
            f"{config.experiment_name} has no checkpoint: it has not started yet ({run_dir} does "
            f"not exist); start it with 'mtf train {config_path}' (or run its sweep)"
        )
    logger.info("resuming %s (config %s)", config.experiment_name, config_path)
    result = run_experiment(config, resume=checkpoint or "latest")
    logger.info(
        "%s: %s after %s, %s",
        config.experiment_name,
        result.status.value,
        counted(result.epoch, "epoch"),
        counted(result.global_step, "step"),
    )
    return exit_code_for(result.status)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf resume``."""
    parser = subparsers.add_parser(
        "resume",
        help="continue an experiment from its latest checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="experiment name or run directory")
    parser.add_argument(
        "--experiments-dir",
        type=Path,
        default=Path("experiments"),
        help="where sweeps put experiment directories (default: ./experiments)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="checkpoint.root_dir of 'mtf train' runs (default: ./runs)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help=(
            "start from this checkpoint file (a run directory: its latest.ckpt) while the "
            "run has no checkpoint of its own "
            "(afterwards the run's own latest wins)"
        ),
    )
    parser.set_defaults(
        handler=lambda args: run_resume(
            args.name, args.experiments_dir, args.runs_dir, args.checkpoint
        )
    )
