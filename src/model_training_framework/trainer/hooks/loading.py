"""Hooks named in the config: ``load_hooks`` imports each class of ``hooks.hook_classes`` by its
dotted path and builds it with its ``hooks.hook_configs`` kwargs, with errors naming the field.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from model_training_framework.config.imports import import_configured
from model_training_framework.errors import ConfigError
from model_training_framework.trainer.hooks.base import TrainerHooks

if TYPE_CHECKING:
    from model_training_framework.trainer.config import HooksConfig

__all__ = ["load_hooks"]


def load_hooks(config: HooksConfig) -> list[TrainerHooks]:
    """Instantiate the hook classes named in ``config.hook_classes``.

    Each entry is a dotted path ``package.module.ClassName``; its constructor kwargs come from
    ``config.hook_configs[path]`` (none when absent).

    Args:
        config: the ``hooks`` section (``hook_classes``, ``hook_configs``).

    Returns:
        One hook instance per entry, in order.

    Raises:
        ConfigError: a module or attribute cannot be found, the object is not a
            ``TrainerHooks`` subclass, or the kwargs do not fit its constructor. (The config
            itself checks that paths are dotted and that ``hook_configs`` keys are listed.)
    """
    hooks = []
    for index, path in enumerate(config.hook_classes):
        field = f"hooks.hook_classes[{index}]"
        cls = _hook_class(path, field)
        kwargs = dict(config.hook_configs.get(path, {}))
        _check_kwargs_fit(cls, kwargs, path)
        hooks.append(cls(**kwargs))
    return hooks


def _hook_class(path: str, field: str) -> type[TrainerHooks]:
    obj = import_configured(path, field)
    if not (isinstance(obj, type) and issubclass(obj, TrainerHooks)):
        raise ConfigError(
            f"{field}: {path!r} is {obj!r}, not a TrainerHooks subclass; point it at a class "
            f"that subclasses model_training_framework.trainer.TrainerHooks"
        )
    return obj


def _check_kwargs_fit(cls: type, kwargs: dict, path: str) -> None:
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(
            f"hooks.hook_configs[{path!r}] = {kwargs} does not fit "
            f"{cls.__qualname__}{_plain_signature(signature)}: {err}"
        ) from err


def _plain_signature(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without annotations, which read as quoted strings under postponed
    evaluation: ``(step=1, *, label='counter')``."""
    parameters = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=signature.empty)
