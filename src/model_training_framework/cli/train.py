"""``mtf train CONFIG.yaml``: train one experiment described by a config file.

The config names your code by dotted import paths (``model.factory``, ``model.training_step``,
``model.validation_step``, ``data.train[i].factory``, ...); see
:mod:`model_training_framework.experiment.entry` and docs/quickstart.md. The working directory
and the config file's folder are put on the Python path, so a module next to the YAML file is
importable by its name; ``${VAR}`` and ``${VAR:-default}`` in values are taken from the
environment. Rerunning the same command resumes from the run's latest checkpoint.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from model_training_framework.config.legacy import EXPERIMENT_RULES, migrate_legacy_keys
from model_training_framework.config.legacy_overrides import migrate_overrides
from model_training_framework.errors import ConfigError

__all__ = ["add_parser", "apply_overrides", "run_train"]

logger = logging.getLogger(__name__)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``dotted.key=value`` pairs in a nested config dict (values parsed as YAML).

    Args:
        data: the config as loaded from the file (left unchanged).
        overrides: items like ``"optimizer.lr=0.01"`` or ``"training.max_epochs=2"``.

    Returns:
        The config with the overrides applied, every renamed key under its new name.

    Raises:
        ConfigError: an item without ``=`` or a key that walks into a non-mapping.

    Warns:
        DeprecationWarning: a renamed key, in the file or in an override (both are migrated
            first, so that either spelling overrides the other).
    """
    data = migrate_legacy_keys(data, EXPERIMENT_RULES)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE such as optimizer.lr=0.01, got {item!r}")
        parsed[key.strip()] = yaml.safe_load(text)
    for key, value in migrate_overrides(parsed, EXPERIMENT_RULES).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} holds {child!r}, not a section")
            node = child
        node[parts[-1]] = value
    return data


def run_train(config_path: Path, overrides: list[str], resume: str | None) -> int:
    """Load the experiment, apply overrides, train; returns the exit code."""
    from model_training_framework.experiment.config import ExperimentConfig
    from model_training_framework.experiment.entry import add_import_paths, run_experiment
    from model_training_framework.experiment.exit_codes import exit_code_for
    from model_training_framework.experiment.manager import read_config_file, substitute_env_vars

    if not config_path.is_file():
        raise FileNotFoundError(f"config file {config_path} does not exist")
    add_import_paths(config_path)
    raw = substitute_env_vars(read_config_file(config_path), where=str(config_path))
    data = apply_overrides(raw, overrides)
    try:
        config = ExperimentConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from err
    result = run_experiment(config, resume=resume, config_path=config_path)
    run_dir = Path(config.checkpoint.root_dir) / config.experiment_name
    logger.info(
        "%s: %s after %d epoch(s), %d step(s); run directory %s",
        config.experiment_name,
        result.status.value,
        result.epoch,
        result.global_step,
        run_dir,
    )
    return exit_code_for(result.status)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf train``."""
    parser = subparsers.add_parser(
        "train",
        help="train one experiment from a YAML config (rerun to resume)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, metavar="CONFIG.yaml", help="experiment config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optimizer.lr=0.01 (repeatable; YAML values)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="latest|CKPT",
        help="'latest': resume from the run's latest checkpoint, fail if there is none; CKPT: "
        "start from this file (a run directory: its latest.ckpt) while the run has no "
        "checkpoint of its own (afterwards the "
        "run's own latest wins); default: resume automatically when the run directory has a "
        "checkpoint",
    )
    parser.set_defaults(handler=lambda args: run_train(args.config, args.overrides, args.resume))
