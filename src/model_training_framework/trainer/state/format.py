"""How one checkpoint lies on disk: a single file written by rank 0, or a sharded directory.

The :class:`CheckpointManager` decides *when* and *where* a checkpoint is written and keeps the
``latest``/``best`` pointers and the rotation; a ``CheckpointFormat`` decides *how* one
checkpoint is written, read, removed and linked. The format is chosen once, by the sharding
strategy (:mod:`~model_training_framework.trainer.runtime.sharding`): :class:`SingleFileFormat` for replicated models (DDP, one process),
:class:`~.dcp.DcpDirectoryFormat` for FSDP2.

Both publish a checkpoint under its final name only when it is complete (a file renamed from a
temporary name, or a directory renamed from a temporary name), so the manager's rules (latest
pointer, rotation, fallback to older checkpoints) are the same for both.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from model_training_framework.io_utils import fsync_directory, temp_path_for
from model_training_framework.trainer.state.checks import check_finite
from model_training_framework.trainer.state.file_format import (
    read_checkpoint,
    write_checkpoint,
)
from model_training_framework.trainer.state.payload_types import check_payload_types
from model_training_framework.trainer.state.snapshot import CpuSnapshot

__all__ = [
    "MODEL_KEY",
    "OPTIMIZERS_KEY",
    "TENSOR_KEYS",
    "CheckpointFormat",
    "SingleFileFormat",
    "format_of",
]

MODEL_KEY = "model"
OPTIMIZERS_KEY = "optimizers"
TENSOR_KEYS = (MODEL_KEY, OPTIMIZERS_KEY)
"""Payload entries that hold the (possibly sharded) model and optimizer tensors."""

_HARD_LINK_UNSUPPORTED = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


class CheckpointFormat(Protocol):
    """How one checkpoint is stored (see the module docstring)."""

    is_collective: bool
    """Every rank takes part in writing (otherwise rank 0 writes alone)."""
    reshards: bool
    """A checkpoint loads at another world size."""

    def check_payload(self, payload: Mapping[str, Any]) -> None:
        """Raise ``CheckpointError`` for payload values this format does not store."""

    def prepare_write(
        self, content: Mapping[str, Any], path: Path, *, is_rank_zero: bool, asynchronous: bool
    ) -> Callable[[], None]:
        """Start writing ``content`` to ``path``; the returned callable completes it.

        Everything that must happen in the caller's thread (copies of the tensors for an
        asynchronous save, collectives of a synchronous one) happens before this returns; the
        callable may run in a background thread. ``path`` appears only when it is complete.
        NaN/inf tensors raise ``CheckpointError`` (from this call or from the callable) before
        anything is written (see NOTE [finite checkpoints]).
        """

    def read(
        self, path: Path, *, map_location: Any = "cpu", weights_only: bool = True
    ) -> dict[str, Any]:
        """Metadata and payload; tensor entries may be left for :meth:`load_tensors`."""

    def load_tensors(
        self, path: Path, content: Mapping[str, Any], template: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The ``TENSOR_KEYS`` entries, filled into ``template()`` where the format needs one."""

    def is_checkpoint(self, path: Path) -> bool:
        """Whether ``path`` is a checkpoint of this format (a file, or a directory)."""

    def remove(self, path: Path) -> None:
        """Delete one checkpoint."""

    def link_best(self, path: Path, best: Path) -> None:
        """Make ``best`` an independent name for the checkpoint at ``path`` (atomically)."""


class SingleFileFormat:
    """One ``torch.save`` file per checkpoint, written by rank 0 (see ``state/file_format.py``)."""

    is_collective = False
    reshards = False

    def __init__(self) -> None:
        self._snapshot = CpuSnapshot()  # see NOTE [snapshot buffers]

    def check_payload(self, payload: Mapping[str, Any]) -> None:
        check_payload_types(payload)

    def prepare_write(
        self, content: Mapping[str, Any], path: Path, *, is_rank_zero: bool, asynchronous: bool
    ) -> Callable[[], None]:
        staged = self._snapshot.take(dict(content)) if asynchronous else content

        def write() -> None:
            check_finite(staged, path)  # see NOTE [finite checkpoints]
            write_checkpoint(path, staged)

        return write

    def read(
        self, path: Path, *, map_location: Any = "cpu", weights_only: bool = True
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def load_tensors(
        self, path: Path, content: Mapping[str, Any], template: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        return {key: content[key] for key in TENSOR_KEYS}

    def is_checkpoint(self, path: Path) -> bool:
        return path.is_file()

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def link_best(self, path: Path, best: Path) -> None:
        temp = temp_path_for(best)
        try:
            link_or_copy(path, temp)
            os.replace(temp, best)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(best.parent)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no second write); copy it (and fsync) where the
    filesystem has no hard links."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in _HARD_LINK_UNSUPPORTED:
            raise
        shutil.copyfile(source, target)
        with target.open("rb") as handle:
            os.fsync(handle.fileno())


def format_of(path: str | Path) -> CheckpointFormat:
    """The format of the checkpoint at ``path``: a directory is DCP, a file is single-file."""
    if Path(path).is_dir():
        from model_training_framework.trainer.state.dcp import DcpDirectoryFormat

        return DcpDirectoryFormat()
    return SingleFileFormat()
