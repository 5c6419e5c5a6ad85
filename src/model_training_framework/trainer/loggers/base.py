"""The logger protocol, a no-op base class, and helpers shared by the backends.

Every backend implements :class:`Logger`. Backends inherit from :class:`BaseLogger` so that a
backend that cannot show, say, images simply does not override ``log_image``.

Optional backends (tensorboard, wandb, matplotlib) are imported inside the class that needs them
through :func:`import_optional`, never at module import time.
"""

from __future__ import annotations

import importlib
import re
import struct
import zlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = [
    "BaseLogger",
    "Logger",
    "NullLogger",
    "encode_png",
    "flatten_params",
    "import_optional",
    "safe_file_stem",
    "to_hwc_uint8",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by number of channels: grey, grey+alpha, RGB, RGBA.
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@runtime_checkable
class Logger(Protocol):
    """What the trainer calls on every logging backend (only on rank 0)."""

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Record numeric metrics (``train/loss``, ``val/dl_a/acc``, ...) at ``step``."""
        ...

    def log_text(self, key: str, text: str, step: int) -> None:
        """Record a piece of text under ``key`` at ``step``."""
        ...

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Record an image: an HWC/HW numpy array (uint8 or float in [0, 1]) or a CHW/HW tensor."""
        ...

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Record a matplotlib figure (the caller keeps ownership; it is not closed)."""
        ...

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Record the run's hyperparameters (nested mappings are allowed)."""
        ...

    def close(self) -> None:
        """Flush and release files and connections; safe to call twice."""
        ...


class BaseLogger:
    """Logger with no-op defaults; backends override what they can show."""

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Ignore scalars (override in a backend)."""

    def log_text(self, key: str, text: str, step: int) -> None:
        """Ignore text (override in a backend)."""

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Ignore images (override in a backend)."""

    def log_figure(self, key: str, figure: Any, step: int) -> None:
        """Ignore figures (override in a backend)."""

    def log_hyperparams(self, params: Mapping[str, object]) -> None:
        """Ignore hyperparameters (override in a backend)."""

    def close(self) -> None:
        """Nothing to release (override in a backend)."""


class NullLogger(BaseLogger):
    """Logs nothing: what ranks other than 0 get from ``build_logger``."""


def import_optional(module_name: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or fail with the extra that provides it.

    Args:
        module_name: Dotted module to import, e.g. ``"torch.utils.tensorboard"``.
        extra: Name of the package extra that installs it, e.g. ``"tensorboard"``.
        purpose: What needs it, for the message, e.g. ``"TensorBoard logging"``.

    Returns:
        The imported module.

    Raises:
        ImportError: The module (or one it needs) is not installed; the message names
            ``pip install 'model-training-framework[<extra>]'``.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional package behind '{module_name}', which could not be "
            f"imported ({err}); install it with: pip install 'model-training-framework[{extra}]'"
        ) from err


def to_hwc_uint8(image: Any) -> np.ndarray:
    """Convert an image to a ``(height, width, channels)`` uint8 array.

    Numpy arrays are read as HW or HWC; torch tensors as HW or CHW (torchvision's layout).
    Float (and bool) images are taken to lie in [0, 1], integer images in [0, 255]; values
    outside are clipped. Channels must be 1, 2, 3 or 4.

    Args:
        image: The image as a numpy array or a torch tensor.

    Returns:
        A C-contiguous uint8 array of shape ``(H, W, C)``.

    Raises:
        TypeError: ``image`` is neither a numpy array nor a torch tensor, or has a non-numeric
            dtype.
        ValueError: The shape or channel count is not an image's.
    """
    if isinstance(image, torch.Tensor):
        tensor = image.detach().to("cpu")
        # bfloat16 has no numpy counterpart; float32 holds every float image exactly enough.
        array = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
        if array.ndim == 3:
            array = np.moveaxis(array, 0, -1)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            f"log_image expects a numpy array (HW/HWC) or a torch tensor (HW/CHW), got "
            f"{type(image).__name__}; convert the image to one of these first"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in _PNG_COLOR_TYPE:
        raise ValueError(
            f"log_image expects HW or HWC arrays / HW or CHW tensors with 1-4 channels, got "
            f"shape {tuple(image.shape)}; numpy arrays are read channels-last, tensors "
            f"channels-first"
        )
    return np.ascontiguousarray(_to_uint8(array))


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    if array.dtype.kind in "fb":
        return np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise TypeError(
        f"log_image expects uint8, integer (0-255) or float (0-1) pixels, got dtype "
        f"{array.dtype}; convert the image to one of these first"
    )


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W, C)`` uint8 array as PNG bytes (standard library only).

    Args:
        image: Output of :func:`to_hwc_uint8`.

    Returns:
        The PNG file content.
    """
    height, width, channels = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    # Each scanline starts with filter type 0 (None).
    rows = np.concatenate(
        [np.zeros((height, 1), dtype=np.uint8), image.reshape(height, width * channels)], axis=1
    )
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def safe_file_stem(key: str) -> str:
    """Turn a metric key such as ``val/dl_a/samples`` into a file-name stem ``val_dl_a_samples``.

    Args:
        key: Any logging key.

    Returns:
        A non-empty string of ``[A-Za-z0-9._-]`` characters.
    """
    return _UNSAFE_FILE_CHARS.sub("_", key).strip("._") or "item"


def flatten_params(params: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Flatten nested mappings into ``{"a/b": value}``; lists and other values are kept as is.

    Args:
        params: Hyperparameters, possibly nested (a config's ``to_dict()``).
        prefix: Key prefix used by the recursion.

    Returns:
        A flat dict with ``/``-joined keys.
    """
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}/"))
        else:
            flat[name] = value
    return flat
