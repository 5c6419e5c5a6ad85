"""What a checkpoint holds, summarised for ``mtf inspect``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from model_training_framework.trainer.state.file_format import (
    MANAGER_KEY,
    METADATA_KEYS,
    read_checkpoint,
)
from model_training_framework.trainer.state.layout import inspect_view

__all__ = ["describe_checkpoint"]

_LONG_LIST_ITEMS = 16  # longer lists are summarised by their length


def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """Summarise a checkpoint for ``mtf inspect``.

    Args:
        path: The checkpoint file, or the directory of a sharded checkpoint.

    Returns:
        ``path``, ``file_size_bytes``, the metadata (format and framework version, creation
        time, epoch, global step, metrics, code version), ``trainer`` (the loop counters, loader
        names, schedule cursor, rank 0's loader positions, RNG and pending metrics, early
        stopping: ``layout.inspect_view``, each tensor replaced by a short description)
        and ``sections``: ``{top-level key: {"num_tensors", "num_bytes"}}`` for every
        payload entry.

    Raises:
        CheckpointError: As :func:`read_checkpoint`.
    """
    file = Path(path)
    if file.is_dir():
        from model_training_framework.trainer.state.dcp import (
            DcpDirectoryFormat,
            tensor_sections,
        )

        content = DcpDirectoryFormat().read(file)
        sharded = tensor_sections(file)
        size = sum(item.stat().st_size for item in file.iterdir() if item.is_file())
    else:
        content, sharded, size = read_checkpoint(file), {}, file.stat().st_size
    payload_keys = [k for k in content if k not in METADATA_KEYS]
    return {
        "path": str(file),
        "file_size_bytes": size,
        **{key: content[key] for key in METADATA_KEYS if key != MANAGER_KEY},
        "trainer": _summarise(inspect_view(content)),
        "sections": {
            **{key: _count_tensors(content[key]) for key in payload_keys},
            **sharded,  # a sharded checkpoint's tensors are counted from its shards
        },
    }


def _summarise(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={list(value.shape)}, dtype={value.dtype})"
    if isinstance(value, Mapping):
        return {key: _summarise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > _LONG_LIST_ITEMS:
            return f"<{type(value).__name__} of {len(value)} items>"
        return [_summarise(item) for item in value]
    return value


def _count_tensors(value: Any) -> dict[str, int]:
    num_tensors = num_bytes = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            num_tensors += 1
            num_bytes += item.numel() * item.element_size()
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return {"num_tensors": num_tensors, "num_bytes": num_bytes}
