"""Resume precedence (SPEC section 4): an explicit checkpoint, else the run's latest, else a
warm start that loads weights only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config.loading import import_object
from ..errors import CheckpointError
from .results import WarmStartResult

__all__ = ["find_checkpoint", "warm_start"]

logger = logging.getLogger(__name__)


def find_checkpoint(
    manager: Any, dist: Any, resume_from: str | Path | None, *, auto_resume: bool, run_dir: Path
) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from and its payload, or None to start fresh.

    ``resume_from`` is a path or ``"latest"``; without it the run's latest checkpoint is used
    when ``auto_resume``. Rank 0 chooses, so every rank loads the same file, and an error on
    rank 0 reaches every rank (no rank is left waiting in a collective).

    Raises:
        CheckpointError: ``"latest"`` was asked for but the run has no checkpoint, or the file
            cannot be loaded.
    """
    if resume_from is not None and str(resume_from) != "latest":
        return Path(resume_from), manager.load(resume_from)
    if resume_from is None and not auto_resume:
        return None
    chosen = None

    def choose() -> str | None:
        nonlocal chosen
        chosen = manager.load_latest_valid()
        return None if chosen is None else str(chosen[0])

    path = dist.rank_zero_call(choose)
    if path is None:
        if resume_from is not None:
            raise CheckpointError(
                f"resume_from_checkpoint='latest' but {run_dir} has no checkpoint; drop the "
                "argument to start fresh"
            )
        return None
    return chosen if chosen is not None else (Path(path), manager.load(path))


def warm_start(
    trainer: Any,
    module: torch.nn.Module,
    loader_fn: Callable[..., WarmStartResult] | None,
    config: Any,
) -> None:
    """Load weights only (no optimizer or loop state) from a registered warm-start loader.

    ``loader_fn`` (from ``set_warm_start_loader``) wins over ``config`` (a ``WarmStartConfig``
    or None); both are called as ``fn(trainer, checkpoint_path)``.

    Raises:
        TypeError: the loader does not return a ``WarmStartResult``.
        RuntimeError: the weights do not fit the model (from ``load_state_dict``).
    """
    path, strict = None, True
    if loader_fn is None and config is not None:
        try:
            loader_fn = import_object(config.loader_class)
        except ImportError as err:
            raise ValueError(f"warm_start.loader_class: {err}") from err
        if isinstance(loader_fn, type):
            loader_fn = loader_fn()
        path, strict = config.checkpoint_path, config.strict
    if loader_fn is None:
        return
    result = loader_fn(trainer, path)
    if not isinstance(result, WarmStartResult):
        raise TypeError(
            f"warm-start loader must return WarmStartResult, got {type(result).__name__}"
        )
    module.load_state_dict(result.model_state_dict, strict=strict and result.strict)
    logger.info("warm start: loaded weights (no optimizer or loop state)")
