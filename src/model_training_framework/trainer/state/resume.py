"""Resume precedence: the run's own latest checkpoint, else an explicit initial checkpoint,
else a warm start that loads weights only (docs/fault_tolerance.md, "Where a run resumes from").

NOTE [requeue-safe resume]: a requeued SLURM job (or a rerun) repeats the same command, so
``fit(resume_from_checkpoint=PATH)`` runs again after the run has saved checkpoints of its own.
PATH is therefore an *initial* checkpoint: it is used only while the run directory has no
checkpoint; once it has one, the run's own latest wins (and a warning says so), as with
torchtitan's ``initial_load_path``. Otherwise every requeue would start over from PATH.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from model_training_framework.config.imports import import_configured
from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.results import WarmStartResult
from model_training_framework.trainer.state.file_names import LATEST_NAME

__all__ = ["find_checkpoint", "warm_start"]

logger = logging.getLogger(__name__)

LATEST = "latest"


def find_checkpoint(
    manager: Any, dist: Any, resume_from: str | Path | None, *, auto_resume: bool, run_dir: Path
) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from and its payload, or None to start fresh.

    * ``resume_from=PATH``: the run's own latest checkpoint when the run directory has one
      (with a warning that PATH was not used), else PATH (see NOTE [requeue-safe resume]);
      a run directory as PATH means its ``latest.ckpt``.
    * ``resume_from="latest"`` (any case): the run's own latest checkpoint; an error when there
      is none.
    * ``resume_from=None``: the run's own latest checkpoint when ``auto_resume``, else None.

    Rank 0 chooses, so every rank loads the same file, and an error on rank 0 reaches every
    rank (no rank is left waiting in a collective).
    Every rank then loads the file, and a rank that cannot (say, the file is missing on
    its node) stops every rank.

    Raises:
        CheckpointError: ``"latest"`` was asked for but the run has no checkpoint, or the file
            cannot be loaded.
        RankFailedError: another rank could not load it.
    """
    explicit = resume_from is not None and str(resume_from).lower() != LATEST
    if explicit:
        resume_from = _latest_of_run_directory(Path(resume_from))
    if resume_from is None and not auto_resume:
        return None
    chosen = None
    damaged = ""

    def choose() -> str | None:
        nonlocal chosen, damaged
        try:
            chosen = manager.load_latest_valid()
        except CheckpointError as err:
            if not explicit:
                raise
            damaged = str(err)  # the error itself advises resuming from another file
        return None if chosen is None else str(chosen[0])

    own = dist.rank_zero_call(choose)
    if own is not None:
        if explicit and dist.is_rank_zero:
            _warn_initial_checkpoint_not_used(Path(resume_from), Path(own), run_dir)
        return Path(own), _load_everywhere(manager, dist, own, chosen)
    if explicit:
        if damaged:
            logger.warning("using resume_from_checkpoint=%s because %s", resume_from, damaged)
        return Path(resume_from), _load_everywhere(manager, dist, resume_from, None)
    if resume_from is not None:
        raise CheckpointError(
            f"resume_from_checkpoint='latest' but {run_dir} has no checkpoint; drop the "
            "argument to start fresh"
        )
    return None


def _latest_of_run_directory(path: Path) -> Path:
    """A run directory given as the checkpoint means its latest checkpoint (as for ``mtf
    inspect``); any other path is returned as given (a directory without ``latest.ckpt`` is
    then refused when it is read, listing the checkpoint files in it)."""
    latest = path / LATEST_NAME
    if path.is_dir() and latest.exists():
        logger.info("resume_from_checkpoint=%s is a run directory: using %s", path, latest)
        return latest
    return path


def _warn_initial_checkpoint_not_used(initial: Path, own: Path, run_dir: Path) -> None:
    if initial.resolve() == own.resolve():
        return
    # A warning, not info: Python logging shows warnings without any setup.
    logger.warning(
        "resuming from this run's own latest checkpoint %s, not from resume_from_checkpoint=%s: "
        "that file is only the starting point while %s has no checkpoint of its own (so a "
        "requeued or rerun job continues where it stopped). To start over from %s, use a new "
        "experiment_name or remove the checkpoints in %s",
        own,
        initial,
        run_dir,
        initial,
        run_dir,
    )


def _load_everywhere(
    manager: Any, dist: Any, path: str | Path, chosen: tuple[Path, dict[str, Any]] | None
) -> dict[str, Any]:
    """Load ``path`` on every rank (rank 0 may have it already); one collective agrees."""
    payloads: list[dict[str, Any]] = []

    def load() -> None:
        payloads.append(chosen[1] if chosen is not None else manager.load(path))

    dist.all_ranks_call(load)
    return payloads[0]


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
        ConfigError: ``warm_start.loader_class`` cannot be imported.
        TypeError: the loader does not return a ``WarmStartResult``.
        RuntimeError: the weights do not fit the model (from ``load_state_dict``).
    """
    path, strict = None, True
    if loader_fn is None and config is not None:
        loader_fn = import_configured(config.loader_class, "warm_start.loader_class")
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
