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

Rules:

* ``model.factory`` is called with every other key of ``model`` except ``training_step`` and
  ``validation_step``, which name the step functions ``fn(trainer, batch, batch_idx,
  dataloader_idx, dataloader_name)``.
* Each entry of ``data.train`` / ``data.val`` has a ``name`` and a ``factory``; ``batch_size``
  (default 32), ``shuffle`` (default true for train, false for val) and ``drop_last`` (default
  false) configure the DataLoader the runner builds around a returned ``Dataset``, with the
  ``performance.dataloader_num_workers`` / ``pin_memory`` / ``persistent_workers`` /
  ``prefetch_factor`` settings. Every other key is passed to the factory. A factory may also
  return a ready ``DataLoader``, which is used as it is (then the entry must not set
  ``batch_size``, ``shuffle`` or ``drop_last``).
* The loader names fill ``train_loader_config.dataloader_names`` /
  ``val_loader_config.dataloader_names`` when those are unset; a config without
  ``train_loader_config`` gets a default ``MultiDataLoaderConfig`` (round robin).
* ``optimizer.name`` is a ``torch.optim`` class name in any case (``adamw``, ``SGD``) or a dotted
  path; ``scheduler.name`` likewise among ``torch.optim.lr_scheduler``.

The run writes ``experiment.yaml`` (the full config) and ``status.json`` (``running``, then the
final status, step, epoch and metrics, or ``failed`` with the error when ``fit`` raises) into its run directory
``<checkpoint.root_dir>/<experiment_name>/``; ``mtf status`` and ``mtf resume`` read them.

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

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from model_training_framework.config.imports import import_callable, is_dotted_path
from model_training_framework.errors import ConfigError, MTFError
from model_training_framework.experiment.config import ExperimentConfig, OptimizerConfig
from model_training_framework.experiment.exit_codes import (
    EXIT_ERROR,
    exit_code_for,
    one_line_message,
)
from model_training_framework.io_utils import atomic_write_text
from model_training_framework.trainer.config import (
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    PerformanceConfig,
)
from model_training_framework.trainer.hooks import TrainerHooks
from model_training_framework.trainer.results import FitResult

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

_STEP_KEYS = ("training_step", "validation_step")
_LOADER_SETTINGS = ("batch_size", "shuffle", "drop_last")
_DEFAULT_BATCH_SIZE = 32
_DATA_KEYS = ("train", "val")


# ----------------------------------------------------------------------------- building blocks


def build_model(model_section: Mapping[str, Any]) -> torch.nn.Module:
    """Build the model: call ``model.factory`` with the section's other keys.

    Args:
        model_section: the ``model`` section; ``training_step``/``validation_step`` are not passed.

    Returns:
        The ``torch.nn.Module`` the factory returned.

    Raises:
        ConfigError: no ``factory``, it cannot be imported, or it returns no ``nn.Module``.
    """
    if "factory" not in model_section:
        raise ConfigError(
            "model.factory is missing; set it to the dotted path of a function that returns "
            f"your torch.nn.Module (model keys found: {sorted(model_section)})"
        )
    factory = import_callable(model_section["factory"], "model.factory")
    kwargs = {k: v for k, v in model_section.items() if k != "factory" and k not in _STEP_KEYS}
    model = factory(**kwargs)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"model.factory {model_section['factory']!r} returned a {type(model).__name__}; it "
            "must return a torch.nn.Module"
        )
    return model


def load_step_functions(
    model_section: Mapping[str, Any],
) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """Import ``model.training_step`` (required) and ``model.validation_step`` (optional).

    Raises:
        ConfigError: the training step is missing or a path cannot be imported.
    """
    if "training_step" not in model_section:
        raise ConfigError(
            "model.training_step is missing; set it to the dotted path of "
            "fn(trainer, batch, batch_idx, dataloader_idx, dataloader_name) -> {'loss': ...}"
        )
    training_step = import_callable(model_section["training_step"], "model.training_step")
    validation_path = model_section.get("validation_step")
    validation_step = (
        None
        if validation_path is None
        else import_callable(validation_path, "model.validation_step")
    )
    return training_step, validation_step


def _loader_entries(data_section: Mapping[str, Any], split: str) -> list[Mapping[str, Any]]:
    entries = data_section.get(split)
    if entries is None:
        return []
    if (
        isinstance(entries, Mapping)
        or not isinstance(entries, Sequence)
        or isinstance(entries, str)
    ):
        raise ConfigError(
            f"data.{split} must be a list of loaders ({{name, factory, batch_size, ...}}), got "
            f"{type(entries).__name__}; write a one-element list for a single loader"
        )
    for idx, entry in enumerate(entries):
        where = f"data.{split}[{idx}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with 'name' and 'factory', got {entry!r}")
        missing = [key for key in ("name", "factory") if key not in entry]
        if missing:
            raise ConfigError(
                f"{where} is missing {missing}; every loader needs a name and a factory"
            )
    return list(entries)


def _wrap_dataset(
    dataset: Dataset, entry: Mapping[str, Any], performance: PerformanceConfig, *, shuffle: bool
) -> DataLoader:
    num_workers = performance.dataloader_num_workers
    options: dict[str, Any] = {
        "batch_size": entry.get("batch_size", _DEFAULT_BATCH_SIZE),
        "drop_last": entry.get("drop_last", False),
        "num_workers": num_workers,
        "pin_memory": performance.pin_memory,
    }
    if not isinstance(dataset, IterableDataset):
        options["shuffle"] = entry.get("shuffle", shuffle)
    elif entry.get("shuffle"):
        raise ConfigError(
            f"loader {entry['name']!r}: shuffle is set but the factory returned an "
            "IterableDataset, which DataLoader cannot shuffle; shuffle inside the dataset"
        )
    if num_workers > 0:  # DataLoader refuses these two without worker processes
        options["persistent_workers"] = performance.persistent_workers
        options["prefetch_factor"] = performance.prefetch_factor
    return DataLoader(dataset, **options)


def build_loaders(
    data_section: Mapping[str, Any], split: str, performance: PerformanceConfig
) -> tuple[list[str], list[Any]]:
    """Build the loaders of ``data.<split>`` (``"train"`` or ``"val"``).

    Args:
        data_section: the experiment's ``data`` section.
        split: ``"train"`` or ``"val"``.
        performance: settings for the DataLoaders built around returned Datasets.

    Returns:
        (names, loaders) in config order; empty lists when the split is absent.

    Raises:
        ConfigError: malformed entries, unknown ``data`` keys, or a factory that returns neither
            a Dataset nor a DataLoader.
    """
    unknown = sorted(set(data_section) - set(_DATA_KEYS))
    if unknown:
        raise ConfigError(
            f"data: unknown key(s) {unknown}; the data section holds 'train' and 'val' loader "
            "lists (put factory arguments inside each loader entry)"
        )
    names, loaders = [], []
    for idx, entry in enumerate(_loader_entries(data_section, split)):
        where = f"data.{split}[{idx}]"
        factory = import_callable(entry["factory"], f"{where}.factory")
        kwargs = {k: v for k, v in entry.items() if k not in ("name", "factory", *_LOADER_SETTINGS)}
        made = factory(**kwargs)
        if isinstance(made, DataLoader):
            settings = sorted(set(entry) & set(_LOADER_SETTINGS))
            if settings:
                raise ConfigError(
                    f"{where}: the factory returned a DataLoader, so {settings} would be ignored; "
                    "remove them from the entry or return a Dataset"
                )
            loader = made
        elif isinstance(made, Dataset):
            loader = _wrap_dataset(made, entry, performance, shuffle=split == "train")
        else:
            raise ConfigError(
                f"{where}.factory {entry['factory']!r} returned a {type(made).__name__}; it must "
                "return a torch Dataset or DataLoader"
            )
        names.append(str(entry["name"]))
        loaders.append(loader)
    return names, loaders


def _find_class(name: str, module: Any, field_path: str, base: type) -> type:
    if is_dotted_path(name):
        return import_callable(name, field_path)  # type: ignore[return-value]
    candidates = {
        attr.lower(): getattr(module, attr)
        for attr in dir(module)
        if isinstance(getattr(module, attr), type) and issubclass(getattr(module, attr), base)
    }
    found = candidates.get(name.lower())
    if found is None:
        choices = ", ".join(sorted(k for k in candidates if not k.startswith("_")))
        raise ConfigError(
            f"{field_path}: {name!r} is not a {module.__name__} class; choose one of {choices} "
            "or give a dotted path"
        )
    return found


def build_optimizer(config: OptimizerConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer over ``model``'s parameters from the ``optimizer`` section.

    Raises:
        ConfigError: unknown optimizer name, or arguments the optimizer does not accept.
    """
    cls = _find_class(config.name, torch.optim, "optimizer.name", torch.optim.Optimizer)
    kwargs = {"lr": config.lr, "weight_decay": config.weight_decay, **config.kwargs}
    try:
        return cls(model.parameters(), **kwargs)
    except TypeError as err:
        raise ConfigError(f"optimizer {config.name!r} rejected {sorted(kwargs)}: {err}") from err


def build_scheduler(
    section: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Build ``{"scheduler": s, "interval": "step" | "epoch"}`` from the ``scheduler`` section.

    Returns:
        None when the section is None.

    Raises:
        ConfigError: unknown scheduler name or rejected arguments.
    """
    if section is None:
        return None
    base = torch.optim.lr_scheduler.LRScheduler
    cls = _find_class(section["name"], torch.optim.lr_scheduler, "scheduler.name", base)
    kwargs = {k: v for k, v in section.items() if k not in ("name", "interval")}
    try:
        scheduler = cls(optimizer, **kwargs)
    except TypeError as err:
        raise ConfigError(
            f"scheduler {section['name']!r} rejected {sorted(kwargs)}: {err}"
        ) from err
    return {"scheduler": scheduler, "interval": section.get("interval", "step")}


def _named(
    loader_config: MultiDataLoaderConfig, names: list[str], field_path: str
) -> MultiDataLoaderConfig:
    if loader_config.dataloader_names is None:
        loader_config.dataloader_names = names
    elif list(loader_config.dataloader_names) != names:
        raise ConfigError(
            f"{field_path}.dataloader_names is {loader_config.dataloader_names} but the data "
            f"section names the loaders {names}; make them equal or drop dataloader_names"
        )
    return loader_config


def _trainer_config(
    config: ExperimentConfig, train_names: list[str], val_names: list[str]
) -> GenericTrainerConfig:
    trainer_config = config.to_trainer_config()
    if trainer_config.train_loader_config is None:
        trainer_config.train_loader_config = MultiDataLoaderConfig()
    _named(trainer_config.train_loader_config, train_names, "train_loader_config")
    if val_names:
        _named(trainer_config.val_loader_config, val_names, "val_loader_config")
    return trainer_config


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
        _trainer_config(config, train_names, val_names),
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
    status when it ends, and ``failed`` (with the error) when it fails after that.
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self._config = config
        self._has_started = False

    def on_train_start(self, trainer: Any) -> None:
        self._has_started = True
        if trainer.is_rank_zero:
            self._config.to_yaml(_prepared(trainer.run_dir) / EXPERIMENT_RECORD)
            _write_json(trainer.run_dir / STATUS_RECORD, _status_record(None))

    def on_train_end(self, trainer: Any, result: FitResult) -> None:
        if trainer.is_rank_zero:
            _write_json(trainer.run_dir / STATUS_RECORD, _status_record(result))

    def on_exception(self, trainer: Any, exception: BaseException) -> None:
        if self._has_started and trainer.is_rank_zero:  # a crashed run must not stay "running"
            record = {**_status_record(None), "status": "failed", "error": repr(exception)}
            record.pop("pid")
            _write_json(trainer.run_dir / STATUS_RECORD, record)


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
    logger.info(
        "%s: %s at step %d", config.experiment_name, result.status.value, result.global_step
    )
    return exit_code_for(result.status)


if __name__ == "__main__":
    sys.exit(main())
