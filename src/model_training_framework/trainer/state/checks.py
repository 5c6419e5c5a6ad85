"""What a checkpoint save verifies and how a failed save is reported.

NOTE [finite checkpoints]: no checkpoint may hold NaN or infinite floating-point state: a
resumed run would start from it and fail again, and rotation would delete the last good files
in its favour. Every save therefore checks the floating-point tensors it is about to write
with one fused 2-norm per device (``torch._foreach_norm``, as gradient clipping computes it;
NaN or inf whenever some element is) and a single host read per device, once per save, never
per step. A non-finite norm can also be an overflow of huge finite values (a float16 tensor
whose norm passes 65504), so only the tensors it flags get an exact ``isfinite`` check, which
decides and names the offending entries. (The max-abs norm would never overflow, but on CPU it
costs ~40x more than the 2-norm.)
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from model_training_framework.errors import CheckpointError

__all__ = ["check_finite", "describe_save_error"]

_MAX_NAMED = 5


def check_finite(content: Mapping[str, Any], path: Path) -> None:
    """Raise when a floating-point tensor in ``content`` holds NaN or infinite values.

    Args:
        content: What the save would write (nested dicts, lists and tuples of tensors and
            plain values).
        path: The file the save would write (named in the error).

    Raises:
        CheckpointError: names the file and the first non-finite entries by key path; nothing
            has been written.
    """
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for where, tensor in _float_tensors(content):
        by_device.setdefault(tensor.device, []).append((where, tensor))
    bad = []
    for entries in by_device.values():
        norms = torch._foreach_norm([tensor for _, tensor in entries], 2.0)
        is_finite = torch.stack([norm.float() for norm in norms]).isfinite()
        if bool(is_finite.all()):
            continue
        flagged = (entries[idx] for idx in torch.nonzero(~is_finite).flatten().tolist())
        bad += [where for where, tensor in flagged if not bool(tensor.isfinite().all())]
    if not bad:
        return
    shown = ", ".join(bad[:_MAX_NAMED])
    if len(bad) > _MAX_NAMED:
        shown += f" and {len(bad) - _MAX_NAMED} more"
    raise CheckpointError(
        f"refusing to write checkpoint {path}: {shown} hold NaN or infinite values, so a "
        "resumed run would start from broken weights; earlier checkpoints are kept. The last "
        "optimizer step produced them: check the loss and gradients (on_nonfinite_loss, "
        "performance.clip_grad_norm, a lower learning rate, optimizer eps)"
    )


def describe_save_error(error: BaseException, path: Path | None) -> str:
    """One phrase naming why a save failed, e.g. ``no space left on device at <path>``."""
    if isinstance(error, OSError):
        where = error.filename or path
        if error.errno == errno.ENOSPC:
            return f"no space left on device at {where}"
        if error.errno == errno.EDQUOT:
            return f"disk quota exceeded at {where}"
        if error.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied at {where}"
        return f"{error.strerror or error} at {where}"
    return f"{type(error).__name__}: {error}"


def _float_tensors(value: Any, where: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(key path, tensor) for every non-empty, dense floating-point tensor in ``value``."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and value.layout == torch.strided and value.numel():
            yield where, value.detach()
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _float_tensors(item, f"{where}[{key!r}]" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for idx, item in enumerate(value):
            yield from _float_tensors(item, f"{where}[{idx}]")
