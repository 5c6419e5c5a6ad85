"""Run one experiment from its config: behind ``mtf train``, ``mtf sweep`` and SLURM jobs.

An experiment config names the user's code by dotted import paths, so a user writes a small
Python module and a YAML file::

    experiment_name: mnist_mlp
    seed: 0
    model:
      factory: my_project.components.build_model        # called with the other keys below
      training_step: my_project.components.training_step
      validation_step: my_project.components.validation_step   # optional
      hidden: 64
    data:
      train:
        - {name: clean, factory: my_project.components.clean_data, batch_size: 32}
        - {name: noisy, factory: my_project.components.noisy_data, batch_size: 32, noise: 0.3}
      val:
        - {name: val, factory: my_project.components.val_data, batch_size: 256}
    optimizer: {name: adamw, lr: 0.001}
    scheduler: {name: steplr, step_size: 100, interval: step}     # optional
    training: {max_epochs: 3}

How each section is built (factories, loaders, optimizer, scheduler) is described in
:mod:`.builders`.

The run writes ``experiment.yaml`` (the full config) and ``status.json`` (``running``, then the
final status, step, epoch, metrics and training limits, or ``failed`` with the error when ``fit`` raises) into its run directory
``<checkpoint.root_dir>/<experiment_name>/``; ``mtf status`` and ``mtf resume`` read them. A
finished run rerun under the limits it finished with trains nothing and leaves both as they are.

As a script (what the launchers run)::

    python -m model_training_framework.experiment.entry --config experiments/x/config.yaml

exits 0 when training completed (or stopped early), 3 when it was preempted (it checkpointed;
rerun to continue), 130 when interrupted, and 2 with a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from model_training_framework.config.imports import import_callable
from model_training_framework.errors import ConfigError, MTFError
from model_training_framework.experiment.builders import (
    build_loaders,
    build_model,
    build_optimizer,
    build_scheduler,
    build_trainer_config,
    load_step_functions,
)
from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.experiment.exit_codes import (
    EXIT_ERROR,
    exit_code_for,
    one_line_message,
)
from model_training_framework.io_utils import atomic_write_text
from model_training_framework.trainer.hooks import TrainerHooks
from model_training_framework.trainer.results import FitResult
from model_training_framework.trainer.runtime.launch_env import detect_launch

__all__ = [
    "EXPERIMENT_RECORD",
    "STATUS_RECORD",
    "build_loaders",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "load_step_functions",
    "main",
    "read_status",
    "run_experiment",
]

logger = logging.getLogger(__name__)

EXPERIMENT_RECORD = "experiment.yaml"
STATUS_RECORD = "status.json"

# ----------------------------------------------------------------------------- records


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def _status_record(result: FitResult | None) -> dict[str, Any]:
    record: dict[str, Any] = {"updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if result is None:
        return {**record, "status": "running", "pid": os.getpid()}
    return {
        **record,
        "status": result.status.value,
        "global_step": result.global_step,
        "epoch": result.epoch,
        "metrics": result.metrics,
        "checkpoint_path": None if result.checkpoint_path is None else str(result.checkpoint_path),
    }


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """Return the run's ``status.json`` as a dict, or None when the run never started.

    Raises:
        ValueError: the file exists but is not valid JSON.
    """
    path = Path(run_dir) / STATUS_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it and rerun") from err


# ----------------------------------------------------------------------------- running


def run_experiment(
    config: ExperimentConfig,
    *,
    resume: str | None = None,
    config_path: str | Path | None = None,
) -> FitResult:
    """Build model, data, optimizer, scheduler and step functions from ``config`` and train.

    Every dotted path is imported and every loader built before training starts, so a typo fails
    before any step or file write. A rerun resumes from the run's latest checkpoint (unless
    ``preemption.resume_from_latest_symlink`` is false).

    Args:
        config: the experiment (see the module docstring for the ``model``/``data`` convention).
        resume: ``"latest"`` or a checkpoint path to resume from; None: automatic resume rules.
        config_path: the config file, when there is one: the git commit recorded in checkpoints
            is that of the repository holding it, else of the one holding the user's modules,
            else of the working directory's.

    Returns:
        The trainer's ``FitResult``.

    Raises:
        ConfigError: a malformed ``model``/``data``/``optimizer``/``scheduler`` section.
        ValueError, TypeError, CheckpointError: as raised by the trainer's checks.

    Example:
        >>> result = run_experiment(ExperimentConfig.from_yaml("experiment.yaml"))  # doctest: +SKIP
        >>> result.status.value                                                     # doctest: +SKIP
        'completed'
    """
    from model_training_framework.trainer.trainer import GenericTrainer

    if config.seed is not None:  # model initialisation and data factories are reproducible too
        from model_training_framework.trainer.state.rng import seed_everything

        seed_everything(config.seed)
    train_names, train_loaders = build_loaders(config.data, "train", config.performance)
    if not train_loaders:
        raise ConfigError(
            "data.train is missing or empty; list at least one loader "
            "({name: ..., factory: pkg.mod.fn, batch_size: ...})"
        )
    val_names, val_loaders = build_loaders(config.data, "val", config.performance)
    training_step, validation_step = load_step_functions(config.model)
    if val_loaders and validation_step is None:
        raise ConfigError(
            "data.val lists validation loaders but model.validation_step is not set; add it or "
            "remove data.val"
        )
    model = build_model(config.model)
    optimizer = build_optimizer(config.optimizer, model)
    scheduler = build_scheduler(config.scheduler, optimizer)
    trainer = GenericTrainer(
        build_trainer_config(config, train_names, val_names),
        model,
        [optimizer],
        None if scheduler is None else [scheduler],
    )
    trainer.set_training_step(training_step)
    if validation_step is not None:
        trainer.set_validation_step(validation_step)
    factory = import_callable(config.model["factory"], "model.factory")  # imported already
    trainer.set_code_directories(_code_directories(config_path, factory, training_step))
    trainer.add_hook(_RunRecords(config))
    return trainer.fit(
        train_loaders=train_loaders,
        val_loaders=val_loaders or None,
        max_epochs=config.training.max_epochs,
        max_steps=config.training.max_steps,
        resume_from_checkpoint=resume,
    )


class _RunRecords(TrainerHooks):
    """Writes the run's records from inside ``fit``, which owns the run directory meanwhile.

    ``experiment.yaml`` and the ``running`` status are written when ``fit`` has accepted the run
    (its checks passed, it resumed or started), so a rejected rerun writes nothing; the final
    status when it ends, and ``failed`` (with the error) when it fails after that. A finished
    run rerun with the same limits (SPEC section 10: it returns at once with its status) keeps
    its records as they are: ``experiment.yaml`` goes on describing the config it trained with.
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self._config = config
        self._has_started = False
        self._finished_status: tuple[str, int] | None = None  # a finished run's, when rerun

    def on_train_start(self, trainer: Any) -> None:
        self._has_started = True
        if not trainer.is_rank_zero:
            return
        self._finished_status = _finished_status(trainer, self._config)
        if self._finished_status is None:
            self._config.to_yaml(_prepared(trainer.run_dir) / EXPERIMENT_RECORD)
            _write_json(trainer.run_dir / STATUS_RECORD, _status_record(None))

    def on_train_end(self, trainer: Any, result: FitResult) -> None:
        if not trainer.is_rank_zero or self._finished_status == (
            result.status.value,
            result.global_step,
        ):
            return
        if self._finished_status is not None:  # it trained after all: record what it ran
            self._config.to_yaml(trainer.run_dir / EXPERIMENT_RECORD)
        record = {**_status_record(result), **_limits(self._config)}
        _write_json(trainer.run_dir / STATUS_RECORD, record)

    def on_exception(self, trainer: Any, exception: BaseException) -> None:
        if self._has_started and trainer.is_rank_zero:  # a crashed run must not stay "running"
            record = {**_status_record(None), "status": "failed", "error": repr(exception)}
            record.pop("pid")
            _write_json(trainer.run_dir / STATUS_RECORD, record)


_FINISHED = ("completed", "early_stopped")


def _limits(config: ExperimentConfig) -> dict[str, int | None]:
    """The training limits, kept in the final status: a rerun under the same ones of a
    finished run trains nothing."""
    return {"max_epochs": config.training.max_epochs, "max_steps": config.training.max_steps}


def _finished_status(trainer: Any, config: ExperimentConfig) -> tuple[str, int] | None:
    """(status, global step) recorded by a run that ended (completed or early-stopped) under
    the limits of ``config`` at the step ``fit`` resumed from; None for any other run."""
    try:
        record = read_status(trainer.run_dir)
    except ValueError:  # an unreadable status.json is replaced with a fresh one, as before
        return None
    if (
        record is None
        or record.get("status") not in _FINISHED
        or record.get("global_step") != trainer.global_step
        or {key: record.get(key, "unknown") for key in _limits(config)} != _limits(config)
    ):
        return None
    return str(record["status"]), trainer.global_step


def _code_directories(
    config_path: str | Path | None, *user_functions: Callable[..., Any]
) -> list[Path]:
    """Where the user's code lives, most specific first: the config file's folder, the folders
    of the modules defining ``user_functions``, then the working directory (not the ``mtf``
    executable's folder, which belongs to the framework's installation)."""
    folders = [] if config_path is None else [Path(config_path).resolve().parent]
    for function in user_functions:
        module = sys.modules.get(getattr(function, "__module__", None) or "")
        file = getattr(module, "__file__", None)
        if file is not None:
            folders.append(Path(file).resolve().parent)
    return [*folders, Path.cwd()]


def _prepared(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def add_import_paths(config_path: str | Path) -> None:
    """Make the user's modules importable: put the working directory and the config's folder
    first on ``sys.path`` (as ``python -m`` does for the working directory)."""
    for folder in (Path(config_path).resolve().parent, Path.cwd()):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry: ``--config PATH [--resume latest|PATH]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m model_training_framework.experiment.entry",
        description="Train one experiment from its config file (what mtf sweep jobs run).",
    )
    parser.add_argument("--config", required=True, type=Path, help="experiment config (YAML)")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    add_import_paths(args.config)
    try:
        config = ExperimentConfig.from_yaml(args.config)
        result = run_experiment(config, resume=args.resume, config_path=args.config)
    except (MTFError, ValueError, TypeError, OSError, ImportError, ArithmeticError) as err:
        if os.environ.get("MTF_DEBUG"):
            raise
        sys.stderr.write(f"error: {one_line_message(err)}\n")
        return EXIT_ERROR
    if detect_launch().rank == 0:  # only rank 0 logs (SPEC 5): one closing line per job
        logger.info(
            "%s: %s at step %d", config.experiment_name, result.status.value, result.global_step
        )
    return exit_code_for(result.status)


if __name__ == "__main__":
    sys.exit(main())
