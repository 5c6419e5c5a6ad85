"""The checkpoints in one run directory: which exist, which one to resume from, which to delete.

Layout of a run directory ``<checkpoint.root_dir>/<experiment_name>/``::

    epoch_0_step_100.ckpt     periodic checkpoints (checkpoint.filename_template), newest
    epoch_1_step_200.ckpt     checkpoint.max_checkpoints kept
    latest.ckpt -> epoch_1_step_200.ckpt    relative symlink to the last file written
    best.ckpt                 hard link to (or copy of) the file with the best monitored metric

With ``distributed.strategy: fsdp`` each checkpoint is a directory of the same name holding
every rank's shards (see ``state/dcp.py``); the format is chosen once (``state/format.py``) and
everything here applies to files and directories alike.

Why a symlink: ``torch.load("latest.ckpt")`` and ``ls -l`` work as users expect, and
``os.replace`` swaps it atomically. When its target is missing (deleted by hand),
:meth:`RunCheckpoints.latest_path` returns None and :meth:`RunCheckpoints.load_latest_valid`
falls back to the newest valid periodic checkpoint. ``best.ckpt`` is a hard link, so rotation
deleting the periodic file does not delete the best one. Writing files and repointing the links
is :class:`~.manager.CheckpointManager`'s (NOTE [save order]).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import fsync_directory
from model_training_framework.trainer.state.file_names import (
    BEST_NAME,
    LATEST_NAME,
    FilenamePattern,
)
from model_training_framework.trainer.state.format import CheckpointFormat

__all__ = ["RunCheckpoints"]

logger = logging.getLogger(__name__)


class RunCheckpoints:
    """The checkpoints of one run directory, as the layout above names them.

    Args:
        run_dir: ``<root_dir>/<experiment_name>`` (it may not exist yet).
        pattern: Names of the periodic checkpoints (``checkpoint.filename_template``).
        checkpoint_format: How one checkpoint is stored (a file or a sharded directory).
    """

    def __init__(
        self, run_dir: Path, pattern: FilenamePattern, checkpoint_format: CheckpointFormat
    ) -> None:
        self.run_dir = run_dir
        self.pattern = pattern
        self.checkpoint_format = checkpoint_format

    # ------------------------------------------------------------------ finding files
    def latest_path(self) -> Path | None:
        """Return the file ``latest.ckpt`` names, or None when there is none or it is missing.

        A ``latest.ckpt`` that is a regular file (a run directory copied with
        ``cp -L``) is returned itself.
        """
        pointer = self.run_dir / LATEST_NAME
        if pointer.is_symlink():
            target = self.run_dir / os.readlink(pointer)
            return target if self.checkpoint_format.is_checkpoint(target) else None
        return pointer if self.checkpoint_format.is_checkpoint(pointer) else None

    def best_path(self) -> Path | None:
        """Return ``<run_dir>/best.ckpt`` if it exists, else None."""
        best = self.run_dir / BEST_NAME
        return best if self.checkpoint_format.is_checkpoint(best) else None

    def checkpoint_paths(self) -> list[Path]:
        """Return the periodic checkpoints that exist, oldest (lowest step) first."""
        if not self.run_dir.is_dir():
            return []
        keyed = []
        for candidate in self.run_dir.iterdir():
            key = self.pattern.sort_key(candidate)
            if (
                key is not None
                and not candidate.is_symlink()
                and self.checkpoint_format.is_checkpoint(candidate)
            ):
                keyed.append((key, candidate))
        return [path for _, path in sorted(keyed)]

    # ------------------------------------------------------------------ resuming
    def load_latest_valid(self, *, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
        """Load the checkpoint to auto-resume from.

        Tries the periodic checkpoints newest first, then the file ``latest.ckpt`` names, and
        returns the first that loads; every file skipped is named, with the reason, in one
        warning.

        Args:
            map_location: Passed to ``torch.load``.

        Returns:
            ``(path, content)``, or None when the run directory holds no checkpoint at all.

        Raises:
            CheckpointError: Checkpoints exist but none loads (listing each and why): starting
                fresh would silently discard the run, so the user decides.
        """
        skipped: list[str] = []
        for path in self._resume_candidates(skipped):
            try:
                content = self.checkpoint_format.read(path, map_location=map_location)
            except CheckpointError as err:
                skipped.append(f"{path.name}: {err}")
                continue
            if skipped:
                logger.warning(
                    "auto-resume: skipped %d checkpoint(s) and resumed from %s instead:\n  %s",
                    len(skipped),
                    path,
                    "\n  ".join(skipped),
                )
            return path, content
        if skipped:
            raise CheckpointError(
                f"no valid checkpoint to resume from in {self.run_dir}:\n  "
                + "\n  ".join(skipped)
                + f"\nresume from another file with resume_from_checkpoint=PATH, or delete "
                f"{self.run_dir} to start fresh"
            )
        return None

    def _resume_candidates(self, skipped: list[str]) -> list[Path]:
        """Periodic files newest (highest step) first, then latest.ckpt's target if it is no
        periodic file (a copied run); notes a dangling link.

        The newest complete file wins even over latest.ckpt's target: a crash between a file's
        rename and the pointer update leaves the pointer one save behind, and every periodic
        file is complete (written under a temporary name, renamed when done).
        """
        candidates = list(reversed(self.checkpoint_paths()))
        pointer = self.run_dir / LATEST_NAME
        latest = self.latest_path()
        if latest is not None and latest not in candidates:
            candidates.append(latest)
        elif latest is None and pointer.is_symlink():
            skipped.append(f"{LATEST_NAME}: points to {os.readlink(pointer)}, which does not exist")
        return candidates

    # ------------------------------------------------------------------ rotation
    def rotate(self, keep: Path, max_checkpoints: int) -> None:
        """Delete older files of ``keep``'s step (one checkpoint per step: an epoch-end save
        after a step save at the same step supersedes it), then the oldest beyond
        ``max_checkpoints``; never ``keep`` nor the file ``latest.ckpt`` names.

        Every file here passed NOTE [finite checkpoints], so the newest finite checkpoint is
        never deleted in favour of a non-finite one.
        """
        protected = {keep.name}
        latest = self.latest_path()
        if latest is not None:
            protected.add(latest.name)
        paths = self.checkpoint_paths()
        removed = [
            path
            for path in paths
            if path.name not in protected and self._step_of(path) == self._step_of(keep)
        ]
        paths = [path for path in paths if path not in removed]
        num_excess = len(paths) - max_checkpoints
        removed += [path for path in paths if path.name not in protected][: max(num_excess, 0)]
        for path in removed:
            self.checkpoint_format.remove(path)
        if removed:
            fsync_directory(self.run_dir)
            logger.debug("rotation removed %s", ", ".join(path.name for path in removed))

    def _step_of(self, path: Path) -> int | None:
        key = self.pattern.sort_key(path)
        return None if key is None else key[0]
