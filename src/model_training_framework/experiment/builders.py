"""Build what an experiment config names: model, step functions, loaders, optimizer, scheduler.

Rules:

* ``model.factory`` is called with every other key of ``model`` except ``training_step`` and
  ``validation_step``, which name the step functions ``fn(trainer, batch, batch_idx,
  dataloader_idx, dataloader_name)``.
* Each entry of ``data.train`` / ``data.val`` has a ``name`` and a ``factory``; ``batch_size``
  (default 32), ``shuffle`` (default true for train, false for val) and ``drop_last`` (default
  false) configure the DataLoader built around a returned ``Dataset``, with the
  ``performance.dataloader_num_workers`` / ``pin_memory`` / ``persistent_workers`` /
  ``prefetch_factor`` settings. Every other key is passed to the factory. A factory may also
  return a ready ``DataLoader``, which is used as it is (then the entry must not set
  ``batch_size``, ``shuffle`` or ``drop_last``).
* The loader names fill ``train_loader_config.dataloader_names`` /
  ``val_loader_config.dataloader_names`` when those are unset; a config without
  ``train_loader_config`` gets a default ``MultiDataLoaderConfig`` (round robin).
* ``optimizer.name`` is a ``torch.optim`` class name in any case (``adamw``, ``SGD``) or a dotted
  path; ``scheduler.name`` likewise among ``torch.optim.lr_scheduler``.

Every error is a :class:`~model_training_framework.errors.ConfigError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from model_training_framework.config.imports import import_callable, is_dotted_path
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.config import ExperimentConfig, OptimizerConfig
from model_training_framework.trainer.config import (
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    PerformanceConfig,
)

__all__ = [
    "build_loaders",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_trainer_config",
    "load_step_functions",
]

_STEP_KEYS = ("training_step", "validation_step")
_LOADER_SETTINGS = ("batch_size", "shuffle", "drop_last")
_DEFAULT_BATCH_SIZE = 32
_DATA_KEYS = ("train", "val")


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


def build_trainer_config(
    config: ExperimentConfig, train_names: list[str], val_names: list[str]
) -> GenericTrainerConfig:
    trainer_config = config.to_trainer_config()
    if trainer_config.train_loader_config is None:
        trainer_config.train_loader_config = MultiDataLoaderConfig()
    _named(trainer_config.train_loader_config, train_names, "train_loader_config")
    if val_names:
        _named(trainer_config.val_loader_config, val_names, "val_loader_config")
    return trainer_config
