"""Input checks that run before any training step or file write, so bad input fails fast
and a rejected run leaves no partial files behind.

Each error says what was wrong, what we got, and how to fix it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import torch
from torch.utils.data import DataLoader

from model_training_framework.trainer.data.user_loaders import loader_length

__all__ = [
    "check_fit_loaders",
    "check_limits",
    "check_loaders",
    "check_optimizer_ids",
    "check_optimizers",
    "check_resume_from",
    "check_step_function",
    "checked_loss",
    "checked_validation_outputs",
    "renamed_keywords",
    "warn_ignored_settings",
]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

STEP_SIGNATURE = "(trainer, batch, batch_idx, dataloader_idx, dataloader_name)"


def _type_name(obj: object) -> str:
    return type(obj).__name__


def renamed_keywords(
    hints: Mapping[str, str],
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so that an old keyword (a key of ``hints``) raises Python's
    "unexpected keyword argument" TypeError with the hint added; every other call, wrong
    keywords included, reaches the function unchanged (its signature stays the public one)."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            for name in kwargs:
                if name in hints:
                    raise TypeError(
                        f"{func.__qualname__}() got an unexpected keyword argument "
                        f"'{name}': {hints[name]}"
                    )
            return func(*args, **kwargs)

        return wrapper

    return decorate


def check_optimizers(optimizers: Any) -> list[torch.optim.Optimizer]:
    """``optimizers`` must be a non-empty list of optimizers.

    Raises:
        TypeError: a bare optimizer, or a list holding something else.
    """
    if isinstance(optimizers, torch.optim.Optimizer):
        raise TypeError(
            f"Expected list, got {_type_name(optimizers)} for optimizers; pass "
            "optimizers=[optimizer] (a list, even for a single optimizer)"
        )
    if not isinstance(optimizers, (list, tuple)) or not optimizers:
        raise TypeError(
            f"Expected a non-empty list of optimizers, got {_type_name(optimizers)}; pass "
            "optimizers=[optimizer]"
        )
    for idx, opt in enumerate(optimizers):
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"optimizers[{idx}] is a {_type_name(opt)}, not a torch.optim.Optimizer"
            )
    return list(optimizers)


def check_step_function(fn: Any, what: str) -> Callable[..., Any]:
    """A step function must accept the five arguments the trainer passes.

    Raises:
        TypeError: not callable, or the old ``(batch)`` signature.
    """
    if not callable(fn):
        raise TypeError(f"{what} must be a function {STEP_SIGNATURE}; got {_type_name(fn)}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # builtins without a signature: trust the caller
    try:
        signature.bind(None, None, 0, 0, "")
    except TypeError as err:
        raise TypeError(
            f"{what} has signature {signature} but is called as {what}{STEP_SIGNATURE}; update "
            "it to the multi-loader signature (def training_step(trainer, batch, batch_idx, "
            "dataloader_idx, dataloader_name): ...)"
        ) from err
    return fn


def check_loaders(loaders: Any, argument: str, *, allow_none: bool = False) -> list[Any]:
    """``loaders`` must be a non-empty list of DataLoaders (or iterables with ``__iter__``).

    Raises:
        TypeError: a bare DataLoader or not a list.
        ValueError: an empty list or an empty loader.
    """
    if loaders is None and allow_none:
        return []
    if isinstance(loaders, DataLoader):
        raise TypeError(
            f"Expected list, got DataLoader for {argument}; wrap your loader in a list: "
            f"{argument}=[loader]"
        )
    if not isinstance(loaders, (list, tuple)):
        raise TypeError(f"Expected list, got {_type_name(loaders)} for {argument}")
    if not loaders:
        without = f" (or {argument}=None to train without validation)" if allow_none else ""
        raise ValueError(f"{argument} is an empty list; give at least one DataLoader{without}")
    for idx, loader in enumerate(loaders):
        if not isinstance(loader, DataLoader):
            raise TypeError(
                f"{argument}[{idx}] is a {_type_name(loader)}; the trainer needs "
                "torch.utils.data.DataLoader objects (torchdata's StatefulDataLoader works too)"
            )
        if loader_length(loader) == 0:
            raise ValueError(
                f"{argument}[{idx}] is empty (0 batches): check its dataset and batch_size "
                "(drop_last=True with fewer samples than batch_size gives 0 batches)"
            )
    return list(loaders)


def check_fit_loaders(train_loaders: Any, val_loaders: Any) -> tuple[list[Any], list[Any]]:
    """``fit``'s loader arguments: train loaders first, then the validation loaders (if any).

    Returns:
        The train and validation loaders as lists (the latter empty for None).

    Raises:
        TypeError, ValueError: as :func:`check_loaders`; the reference framework's call
            ``fit(train_loader, val_loader)`` is named in one message.
    """
    if isinstance(train_loaders, DataLoader) and isinstance(val_loaders, DataLoader):
        raise TypeError(
            "Expected list, got DataLoader for train_loaders and val_loaders; wrap each loader "
            "in a list: fit(train_loaders=[train_loader], val_loaders=[val_loader])"
        )
    train = check_loaders(train_loaders, "train_loaders")
    return train, check_loaders(val_loaders, "val_loaders", allow_none=True)


def check_resume_from(resume_from: Any) -> None:
    """``fit``'s ``resume_from_checkpoint``: a checkpoint path, ``"latest"`` or None.

    Raises:
        TypeError: anything else, e.g. ``True`` (a resume flag in other trainers).
    """
    if resume_from is not None and not isinstance(resume_from, (str, os.PathLike)):
        raise TypeError(
            "resume_from_checkpoint must be a path to a checkpoint, 'latest' (this run's "
            f"newest checkpoint) or None; got {resume_from!r}. A run resumes from its own "
            "latest checkpoint without it (preemption.resume_from_latest_symlink)"
        )


def check_limits(max_epochs: Any, max_steps: Any) -> None:
    """``fit``'s limits: ``max_epochs`` an int >= 1, ``max_steps`` an int >= 1 or None.

    Raises:
        TypeError: a limit that is not a whole number (e.g. ``max_epochs=None``).
        ValueError: a limit below 1.
    """

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(max_epochs) or not (max_steps is None or whole(max_steps)):
        raise TypeError(
            "max_epochs must be an int >= 1 and max_steps an int >= 1 or None; got "
            f"max_epochs={max_epochs!r}, max_steps={max_steps!r} (to train by max_steps alone, "
            "give a max_epochs large enough to reach it)"
        )
    if max_epochs < 1 or (max_steps is not None and max_steps < 1):
        raise ValueError(f"max_epochs and max_steps must be >= 1; got {max_epochs}, {max_steps}")


def check_count(values: Sequence[Any] | None, expected: int, field: str, unit: str) -> None:
    """A per-loader list must have one entry per loader.

    Raises:
        ValueError: the length differs.
    """
    if values is not None and len(values) != expected:
        raise ValueError(
            f"{field} has {len(values)} entries but fit() got {expected} train loaders; "
            f"give one {unit} per loader"
        )


def checked_loss(outputs: Any) -> torch.Tensor:
    """The ``"loss"`` of a training step's output dict.

    Raises:
        TypeError: not a dict, no ``"loss"``, or a loss that is not a tensor requiring grad.
    """
    if not isinstance(outputs, dict):
        raise TypeError(
            f"training_step must return a dict with a 'loss' tensor; it returned {_type_name(outputs)}"
        )
    loss = outputs.get("loss")
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            "training_step must return {'loss': tensor, ...}; got "
            f"{'no loss key' if loss is None else _type_name(loss)} (keys: {sorted(outputs)})"
        )
    if not loss.requires_grad:
        raise TypeError(
            "the 'loss' returned by training_step does not require grad: compute it from the "
            "model's output without .item(), .detach() or torch.no_grad()"
        )
    return loss


def checked_validation_outputs(outputs: Any) -> Mapping[str, Any]:
    """A validation step's output: a dict of metrics (None: no metrics).

    Raises:
        TypeError: anything else, e.g. a bare loss tensor.
    """
    if outputs is None:
        return {}
    if not isinstance(outputs, Mapping):
        raise TypeError(
            "validation_step must return a dict of metrics, e.g. {'loss': loss}; it returned "
            f"{_type_name(outputs)}"
        )
    return outputs


def check_optimizer_ids(
    configured: Sequence[int] | None, num_loaders: int, num_optimizers: int
) -> list[int]:
    """The optimizer of each train loader (``per_loader_optimizer_id``; default all 0).

    Returns:
        One optimizer index per train loader.

    Raises:
        ValueError: not one id per loader, or an id that names no optimizer.

    Logs:
        A warning naming each optimizer that no loader uses: it would never step.
    """
    check_count(configured, num_loaders, "per_loader_optimizer_id", "optimizer index")
    optimizer_ids = list(configured or [0] * num_loaders)
    bad = [i for i in optimizer_ids if not 0 <= i < num_optimizers]
    if bad:
        raise ValueError(
            f"per_loader_optimizer_id names optimizer {bad[0]} but the trainer has "
            f"{num_optimizers} optimizers (valid ids 0..{num_optimizers - 1})"
        )
    for idx in sorted(set(range(num_optimizers)) - set(optimizer_ids)):
        logger.warning(
            "optimizers[%d] never steps: no train loader uses it (per_loader_optimizer_id=%s); "
            "map a loader to it with per_loader_optimizer_id, one optimizer index per loader",
            idx,
            optimizer_ids,
        )
    return optimizer_ids


def warn_ignored_settings(lines: Sequence[str], field_path: str) -> None:
    """Log a warning per config setting that has no effect (e.g. a loader config's
    ``ignored_settings()``), naming the section at ``field_path``."""
    for line in lines:
        logger.warning("%s.%s", field_path, line)
