"""Capture and restore the random number generators a training run draws from.

The captured state holds only tensors and plain Python values (no NumPy arrays), so checkpoints
that contain it load with ``torch.load(weights_only=True)``.

Example:
    >>> import random
    >>> state = capture_rng_state()
    >>> first = random.random()
    >>> restore_rng_state(state)
    >>> random.random() == first
    True
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from model_training_framework.errors import CheckpointError

__all__ = [
    "CUDA",
    "NUMPY",
    "PYTHON",
    "TORCH",
    "capture_rng_state",
    "restore_rng_state",
    "seed_everything",
]

logger = logging.getLogger(__name__)

PYTHON = "python"
NUMPY = "numpy"
TORCH = "torch"
CUDA = "cuda"
_KEYS = (PYTHON, NUMPY, TORCH, CUDA)

# NumPy legacy state tuple: (bit generator name, 624 uint32 keys, pos, has_gauss, cached_gaussian)
_NP_BIT_GENERATOR = "bit_generator"
_NP_KEYS = "keys"
_NP_POS = "pos"
_NP_HAS_GAUSS = "has_gauss"
_NP_CACHED_GAUSSIAN = "cached_gaussian"
_NP_FIELDS = (_NP_BIT_GENERATOR, _NP_KEYS, _NP_POS, _NP_HAS_GAUSS, _NP_CACHED_GAUSSIAN)

_PY_VERSION = "version"
_PY_INTERNAL = "internal"
_PY_GAUSS_NEXT = "gauss_next"
_PY_FIELDS = (_PY_VERSION, _PY_INTERNAL, _PY_GAUSS_NEXT)


def capture_rng_state() -> dict[str, Any]:
    """Return the current states of Python ``random``, NumPy's global RNG, torch CPU and CUDA.

    CUDA states (one per visible device) are captured only when CUDA is available *and*
    already initialised; otherwise ``state["cuda"]`` is ``None`` (capturing must not start CUDA).

    Returns:
        ``{"python": {...}, "numpy": {...}, "torch": ByteTensor, "cuda": list[ByteTensor] | None}``
    """
    return {
        PYTHON: _capture_python(),
        NUMPY: _capture_numpy(),
        TORCH: torch.get_rng_state().clone(),
        CUDA: _capture_cuda(),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators from a :func:`capture_rng_state` result.

    Args:
        state: A captured state, possibly after a ``torch.save``/``torch.load`` round trip.

    Raises:
        CheckpointError: A key is missing or a value has the wrong shape (corrupt or foreign
            checkpoint).
    """
    _require_keys(state, _KEYS, "rng state")
    try:
        _restore_python(state[PYTHON])
        _restore_numpy(state[NUMPY])
        torch.set_rng_state(_as_byte_tensor(state[TORCH]))
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"rng state in the checkpoint cannot be restored ({err}); the checkpoint is corrupt "
            "or was not written by this framework"
        ) from err
    _restore_cuda(state[CUDA])


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    Args:
        seed: Any integer. NumPy only takes 32 bits, so it gets ``seed % 2**32``; torch gets
            ``seed % 2**64``.

    Raises:
        TypeError: ``seed`` is not an int (``bool`` is refused too).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed % 2**64)


def _capture_python() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return {_PY_VERSION: version, _PY_INTERNAL: list(internal), _PY_GAUSS_NEXT: gauss_next}


def _restore_python(state: Mapping[str, Any]) -> None:
    _require_keys(state, _PY_FIELDS, "rng state 'python'")
    random.setstate((state[_PY_VERSION], tuple(state[_PY_INTERNAL]), state[_PY_GAUSS_NEXT]))


def _capture_numpy() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        _NP_BIT_GENERATOR: str(name),
        _NP_KEYS: [int(k) for k in keys],
        _NP_POS: int(pos),
        _NP_HAS_GAUSS: int(has_gauss),
        _NP_CACHED_GAUSSIAN: float(cached_gaussian),
    }


def _restore_numpy(state: Mapping[str, Any]) -> None:
    _require_keys(state, _NP_FIELDS, "rng state 'numpy'")
    np.random.set_state(
        (
            state[_NP_BIT_GENERATOR],
            np.asarray(state[_NP_KEYS], dtype=np.uint32),
            state[_NP_POS],
            state[_NP_HAS_GAUSS],
            state[_NP_CACHED_GAUSSIAN],
        )
    )


def _capture_cuda() -> list[torch.Tensor] | None:
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return [s.clone() for s in torch.cuda.get_rng_state_all()]


def _restore_cuda(states: list[torch.Tensor] | None) -> None:
    if states is None:
        return
    if not torch.cuda.is_available():
        logger.warning(
            "the checkpoint holds CUDA RNG states for %d device(s) but CUDA is not available "
            "here; GPU random streams (dropout on GPU, ...) will not continue exactly",
            len(states),
        )
        return
    num_devices = torch.cuda.device_count()
    if len(states) != num_devices:
        logger.warning(
            "the checkpoint holds CUDA RNG states for %d device(s) but %d are visible now; "
            "restoring the first %d only, so GPU random streams may not continue exactly",
            len(states),
            num_devices,
            min(len(states), num_devices),
        )
    for device_idx, device_state in enumerate(states[:num_devices]):
        torch.cuda.set_rng_state(_as_byte_tensor(device_state), device_idx)


def _as_byte_tensor(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {type(value).__name__}")
    return value.cpu()


def _require_keys(state: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{what} must be a mapping, got {type(state).__name__}; the checkpoint is corrupt "
            "or was not written by this framework"
        )
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"{what} lacks key(s) {missing} (has {sorted(state)}); the checkpoint is corrupt "
            "or was not written by this framework"
        )
