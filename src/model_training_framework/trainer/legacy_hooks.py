"""Hook methods written with the reference framework's signatures: the compatibility branch
for hooks (config keys have theirs in ``config/legacy.py``).

Three hook methods take different arguments than they did in the reference framework. When a
hook is registered, :func:`bind_hook_method` reads each overridden method's signature once
(``inspect.signature``): a method written for our arguments is called as is; one written for
the reference's arguments is wrapped once in a small adapter, with a ``DeprecationWarning`` at
registration (never per call); anything else is a ``TypeError`` before training starts.

Example:
    >>> class Old(TrainerHooks):                          # doctest: +SKIP
    ...     def on_train_end(self, trainer):               # reference: no FitResult
    ...         print("done")
    >>> trainer.add_hook(Old())                            # doctest: +SKIP
    DeprecationWarning: Old.on_train_end(trainer) is the reference framework's signature; ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model_training_framework.config.legacy import warn_deprecated

__all__ = ["LEGACY_SIGNATURES", "LegacySignature", "bind_hook_method"]


@dataclass(frozen=True)
class LegacySignature:
    """A hook method's reference-framework form and how to call it with our arguments."""

    spelling: str  # the old form, e.g. "on_train_end(trainer)"
    num_args: int  # positional arguments after self
    change: str  # what to write instead
    adapt: Callable[[Callable[..., Any]], Callable[..., None]]


def _batch_start(method: Callable[..., Any]) -> Callable[..., None]:
    def call(trainer: Any, batch: Any, batch_idx: int, loader_idx: int, name: str) -> None:
        method(trainer, batch, loader_idx, name)

    return call


def _train_end(method: Callable[..., Any]) -> Callable[..., None]:
    def call(trainer: Any, result: Any) -> None:
        method(trainer)

    return call


def _validation_start(method: Callable[..., Any]) -> Callable[..., None]:
    def call(trainer: Any) -> None:
        method(trainer, trainer.current_epoch)

    return call


LEGACY_SIGNATURES: dict[str, LegacySignature] = {
    "on_train_batch_start": LegacySignature(
        "on_train_batch_start(trainer, batch, loader_idx, loader_name)",
        4,
        "add batch_idx: on_train_batch_start(self, trainer, batch, batch_idx, dataloader_idx, "
        "dataloader_name)",
        _batch_start,
    ),
    "on_train_end": LegacySignature(
        "on_train_end(trainer)",
        1,
        "take the FitResult too: on_train_end(self, trainer, result)",
        _train_end,
    ),
    "on_validation_start": LegacySignature(
        "on_validation_start(trainer, epoch)",
        2,
        "drop epoch (read trainer.current_epoch): on_validation_start(self, trainer)",
        _validation_start,
    ),
}
"""Hook methods whose reference-framework signature is still accepted (with a warning)."""


def bind_hook_method(
    label: str, name: str, method: Callable[..., Any], num_args: int
) -> Callable[..., Any]:
    """Return what the dispatcher calls for ``method``: itself, or an adapter for its old form.

    Args:
        label: the hook's name in messages (its class name).
        name: the hook method's name, e.g. ``"on_train_end"``.
        method: the bound method (or a callable set on the instance).
        num_args: how many positional arguments the trainer passes to ``name``.

    Returns:
        A callable taking the trainer's arguments.

    Raises:
        TypeError: ``method`` accepts neither our arguments nor the reference's.

    Warns:
        DeprecationWarning: ``method`` has the reference framework's signature.
    """
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # some builtins have no signature: call them as they are
        return method
    if _accepts(signature, num_args):
        return method
    legacy = LEGACY_SIGNATURES.get(name)
    if legacy is not None and _accepts(signature, legacy.num_args):
        warn_deprecated(  # attributed to the user's add_hook or GenericTrainer(...) line
            f"{label}.{legacy.spelling} is the reference framework's signature; it still "
            f"works, but {legacy.change}"
        )
        return legacy.adapt(method)
    accepted = f" or the older {legacy.spelling}" if legacy is not None else ""
    raise TypeError(
        f"hook {label}.{name}{signature} cannot take the {num_args} argument(s) the trainer "
        f"passes; write it as TrainerHooks.{name}{_expected(name)}{accepted}"
    )


def _accepts(signature: inspect.Signature, num_args: int) -> bool:
    try:
        signature.bind(*([None] * num_args))
    except TypeError:
        return False
    return True


def _expected(name: str) -> str:
    from model_training_framework.trainer.hooks import (
        TrainerHooks,
    )  # the base class defines the current signatures

    base = inspect.signature(getattr(TrainerHooks, name))
    parameters = [p.replace(annotation=p.empty) for p in base.parameters.values()]
    return str(base.replace(parameters=parameters, return_annotation=base.empty))
