"""Sharded checkpoint directories written with ``torch.distributed.checkpoint`` (DCP).

One checkpoint is one directory, named like a single-file checkpoint
(``epoch_1_step_200.ckpt/``)::

    .metadata               DCP's index: every tensor's global shape, dtype and where its
                            shards lie
    __0_0.distcp            rank 0's shards of the model and optimizer tensors
    __1_0.distcp            rank 1's shards (one file per rank, written in parallel)
    trainer_state.pt        everything else, written by rank 0 with torch.save: format and
                            framework version, epoch, global step, metrics, code version,
                            config, schedule, counters, per-rank loader positions and RNG
                            states, schedulers, scaler, hooks, data fingerprint

# NOTE [sharded publish]: every rank writes its shards into a hidden temporary directory next
# to the final one (``.<name>.<16 hex>.tmp``, the same name on every rank); DCP's save returns
# on every rank only after all shards and ``.metadata`` are written and fsync-ed. Rank 0 then
# writes ``trainer_state.pt`` (atomically), fsyncs the directory and renames it to its final
# name. A crash at any moment leaves either no directory under the final name or a complete
# one; the temporary directory of an interrupted save is removed when the next run starts.
# Reading checks that ``.metadata`` loads, every shard file it names is at least as long as the
# data it indexes (a truncated shard is found) and ``trainer_state.pt`` passes its CRC check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import atomic_write, fsync_directory, temp_path_for
from model_training_framework.trainer.state.checks import check_finite
from model_training_framework.trainer.state.file_format import (
    read_checkpoint,
    write_checkpoint,
)
from model_training_framework.trainer.state.format import (
    MODEL_KEY,
    OPTIMIZERS_KEY,
    TENSOR_KEYS,
    link_or_copy,
)
from model_training_framework.trainer.state.payload_types import check_payload_types

__all__ = ["STATE_FILE", "DcpDirectoryFormat", "consolidate_checkpoint", "tensor_sections"]

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
_METADATA_FILE = ".metadata"
_KEEP_DAMAGED = (
    "resume from an older checkpoint; if this one is in the way, move it aside and keep it until "
    "you know what damaged it"
)
_MODEL_PREFIX = "model."
_OPTIMIZERS_PREFIX = "optimizers."
# What unpickling a damaged .metadata raises varies with the damage.
_METADATA_ERRORS = (
    RuntimeError,
    OSError,
    EOFError,
    KeyError,
    ValueError,
    IndexError,
    AttributeError,
    pickle.UnpicklingError,
)


class DcpDirectoryFormat:
    """One directory per checkpoint; every rank writes its shards (see NOTE [sharded publish])."""

    is_collective = True
    reshards = True

    def __init__(self) -> None:
        self._async_group: Any = None

    def check_payload(self, payload: Mapping[str, Any]) -> None:
        check_payload_types({k: v for k, v in payload.items() if k not in TENSOR_KEYS})

    def _check_finite(self, content: Mapping[str, Any], path: Path) -> None:
        """Each rank checks its own shards; the ranks agree, so all raise or none writes."""
        import torch.distributed as dist

        error: CheckpointError | None = None
        try:
            check_finite(_local_shards(content), path)
        except CheckpointError as err:
            error = err
        if dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([int(error is not None)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._checkpoint_group())
            if error is None and flag.item():
                error = CheckpointError(
                    f"refusing to write checkpoint {path}: another rank's shards hold NaN or "
                    "infinite values (its error names them); earlier checkpoints are kept"
                )
        if error is not None:
            raise error

    def prepare_write(
        self, content: Mapping[str, Any], path: Path, *, is_rank_zero: bool, asynchronous: bool
    ) -> Callable[[], None]:
        import torch.distributed.checkpoint as dcp

        self._check_finite(content, path)  # in this thread: it is a collective
        temp = _temp_dir_for(path)
        if is_rank_zero and temp.exists():  # left by a save of this step that crashed
            shutil.rmtree(temp)
        tensors = {key: content[key] for key in TENSOR_KEYS}
        rest = {key: value for key, value in content.items() if key not in TENSOR_KEYS}
        if asynchronous:
            # Its own process group: the background thread's collectives must not interleave
            # with the training loop's on the default group.
            future = dcp.async_save(
                tensors, checkpoint_id=str(temp), process_group=self._checkpoint_group()
            )
            wait: Callable[[], Any] = future.result
        else:
            dcp.save(tensors, checkpoint_id=str(temp))
            wait = _nothing

        def finish() -> None:
            wait()
            if is_rank_zero:
                _publish(rest, temp, path)

        return finish

    def read(
        self, path: Path, *, map_location: Any = "cpu", weights_only: bool = True
    ) -> dict[str, Any]:
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(
                f"checkpoint {folder} does not exist or is not a directory (sharded checkpoints "
                "are directories)"
            )
        metadata = _verify_shards(folder)
        content = read_checkpoint(
            folder / STATE_FILE, map_location=map_location, weights_only=weights_only
        )
        # The tensors' shapes and dtypes without their data (on the meta device): what resume
        # checks and `mtf inspect` look at; load_tensors reads the data itself.
        content[MODEL_KEY] = _model_on_meta(metadata)
        content[OPTIMIZERS_KEY] = _optimizers_on_meta(metadata)
        return content

    def load_tensors(
        self, path: Path, content: Mapping[str, Any], template: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException

        target = template()
        stored = set(_read_metadata(Path(path)).state_dict_metadata)
        # Optimizer keys missing from the checkpoint belong to parameters whose optimizer had
        # not stepped yet when it was saved: they stay without state, as they were.
        target["optimizers"] = [
            {key: value for key, value in state.items() if f"optimizers.{idx}.{key}" in stored}
            for idx, state in enumerate(target["optimizers"])
        ]
        try:
            dcp.load(target, checkpoint_id=str(path))
        except (RuntimeError, ValueError, CheckpointException) as err:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model and optimizers (different "
                f"parameter names or shapes): {_first_line(err)}"
            ) from err
        return target

    def is_checkpoint(self, path: Path) -> bool:
        return path.is_dir()

    def remove(self, path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path)

    def link_best(self, path: Path, best: Path) -> None:
        """``best`` becomes a directory of hard links to the files of ``path``."""
        temp = temp_path_for(best)
        temp.mkdir()
        try:
            for item in path.iterdir():
                link_or_copy(item, temp / item.name)
            fsync_directory(temp)
            _replace_directory(temp, best)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def _checkpoint_group(self) -> Any:
        import torch.distributed as dist

        if self._async_group is None and dist.is_initialized():
            self._async_group = dist.new_group(backend="gloo")
        return self._async_group


def tensor_sections(path: str | Path) -> dict[str, dict[str, int]]:
    """``{section: {"num_tensors", "num_bytes"}}`` of the sharded tensors, from ``.metadata``.

    Sizes are global (all shards together).
    """
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    sections: dict[str, dict[str, int]] = {}
    for key, item in _read_metadata(Path(path)).state_dict_metadata.items():
        if not isinstance(item, TensorStorageMetadata):
            continue
        counts = sections.setdefault(key.split(".", 1)[0], {"num_tensors": 0, "num_bytes": 0})
        counts["num_tensors"] += 1
        counts["num_bytes"] += item.size.numel() * _element_size(item.properties.dtype)
    return sections


def consolidate_checkpoint(checkpoint: str | Path, output: str | Path) -> Path:
    """Write the model of a sharded checkpoint as one ``torch.save`` state_dict file.

    Runs in one process without a process group: the shards of every rank are read and joined,
    so the result loads into the plain (unsharded) model with ``model.load_state_dict``.

    Args:
        checkpoint: a sharded checkpoint directory (or a run directory: its latest checkpoint).
        output: the file to write (atomically); its directory must exist.

    Returns:
        ``output`` as a Path.

    Raises:
        CheckpointError: ``checkpoint`` is not a complete sharded checkpoint.

    Example:
        >>> consolidate_checkpoint("runs/exp/latest.ckpt", "model.pt")   # doctest: +SKIP
        >>> model.load_state_dict(torch.load("model.pt"))                 # doctest: +SKIP
    """
    import torch.distributed.checkpoint as dcp

    folder = Path(checkpoint)
    if folder.is_dir() and (folder / "latest.ckpt").exists():
        folder = (folder / "latest.ckpt").resolve()
    shapes = DcpDirectoryFormat().read(folder)["model"]
    model = {key: torch.empty(meta.shape, dtype=meta.dtype) for key, meta in shapes.items()}
    dcp.load({"model": model}, checkpoint_id=str(folder), no_dist=True)
    target = Path(output)
    atomic_write(target, lambda handle: torch.save(model, handle))
    logger.info("wrote the model of %s (%d tensors) to %s", folder, len(model), target)
    return target


# ---------------------------------------------------------------------------- internals


def _nothing() -> None:
    return None


def _local_shards(value: Any) -> Any:
    """``value`` with every DTensor replaced by this rank's shard (no collective)."""
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        return value.to_local()
    if isinstance(value, Mapping):
        return {key: _local_shards(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_local_shards(item) for item in value]
    return value


def _temp_dir_for(path: Path) -> Path:
    # The same name on every rank (no broadcast), recognised by io_utils.is_temp_file.
    token = hashlib.sha256(path.name.encode()).hexdigest()[:16]
    return path.with_name(f".{path.name}.{token}.tmp")


def _publish(rest: Mapping[str, Any], temp: Path, path: Path) -> None:
    """See NOTE [sharded publish]."""
    write_checkpoint(temp / STATE_FILE, rest)
    fsync_directory(temp)
    _replace_directory(temp, path)


def _replace_directory(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside and removed."""
    aside = None
    if target.exists():
        aside = temp_path_for(target)
        os.rename(target, aside)
    os.rename(source, target)
    fsync_directory(target.parent)
    if aside is not None:
        shutil.rmtree(aside)


def _read_metadata(folder: Path) -> Any:
    from torch.distributed.checkpoint import FileSystemReader

    if not (folder / _METADATA_FILE).is_file():
        raise CheckpointError(
            f"checkpoint {folder} has no {_METADATA_FILE} (an incomplete or damaged sharded "
            f"checkpoint); {_KEEP_DAMAGED}"
        )
    try:
        return FileSystemReader(str(folder)).read_metadata()
    except _METADATA_ERRORS as err:
        raise CheckpointError(
            f"checkpoint {folder}: {_METADATA_FILE} is damaged ({_first_line(err)}); "
            f"{_KEEP_DAMAGED}"
        ) from err


def _model_on_meta(metadata: Any) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    return {
        key.removeprefix(_MODEL_PREFIX): torch.empty(
            item.size, dtype=item.properties.dtype, device="meta"
        )
        for key, item in metadata.state_dict_metadata.items()
        if key.startswith(_MODEL_PREFIX) and isinstance(item, TensorStorageMetadata)
    }


def _optimizers_on_meta(metadata: Any) -> list[dict[str, torch.Tensor]]:
    """Per optimizer (every index that has an entry), its tensors on the meta device."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    optimizers: dict[int, dict[str, torch.Tensor]] = {}
    for key, item in metadata.state_dict_metadata.items():
        if not key.startswith(_OPTIMIZERS_PREFIX):
            continue
        index, _, name = key.removeprefix(_OPTIMIZERS_PREFIX).partition(".")
        tensors = optimizers.setdefault(int(index), {})
        if isinstance(item, TensorStorageMetadata):
            tensors[name] = torch.empty(item.size, dtype=item.properties.dtype, device="meta")
    return [optimizers.get(index, {}) for index in range(max(optimizers, default=-1) + 1)]


def _verify_shards(folder: Path) -> Any:
    metadata = _read_metadata(folder)
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        end = int(info.offset) + int(info.length)
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), end)
    for name, end in sorted(needed.items()):
        shard = folder / name
        size = shard.stat().st_size if shard.is_file() else None
        if size is None or size < end:
            found = "missing" if size is None else f"{size} bytes, needs {end}"
            raise CheckpointError(
                f"checkpoint {folder}: shard file {name} is truncated or missing ({found}); "
                f"{_KEEP_DAMAGED}"
            )
    return metadata


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
