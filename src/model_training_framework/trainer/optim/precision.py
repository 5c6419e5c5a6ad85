"""Mixed precision behind one interface: ``NoPrecision`` or ``Autocast`` (+ GradScaler).

The trainer chooses once (``build_precision``) and then always calls the same methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from model_training_framework.errors import CheckpointError

__all__ = ["Autocast", "NoPrecision", "Precision", "build_precision"]

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Shared by every full-precision step (a nullcontext can be entered any number of times).
_NO_AUTOCAST = contextlib.nullcontext()


class Precision:
    """Full precision: a null autocast context and a plain backward."""

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        """Context in which the training/validation step runs."""
        return _NO_AUTOCAST

    def run_step(self, step_fn: Callable[..., Any], *args: Any) -> Any:
        """``step_fn(*args)`` under this precision (a plain call in full precision)."""
        return step_fn(*args)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss``."""
        loss.backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Make gradients of ``optimizer`` true-scale before clipping (no-op without a scaler)."""

    @property
    def scales_loss(self) -> bool:
        """Whether a GradScaler scales the loss (then ``unscale`` and ``step`` go through it;
        without one, ``unscale`` does nothing and ``step`` is ``optimizer.step()``)."""
        return False

    @property
    def checks_gradients(self) -> bool:
        """Whether the trainer checks gradients for non-finite values before a step (False
        under a GradScaler: it skips such steps itself and lowers its scale)."""
        return not self.scales_loss

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Step ``optimizer`` (the scaler may skip a step with inf/NaN gradients, then updates
        its scale)."""
        optimizer.step()

    def drop_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The trainer dropped the step of ``optimizer`` after :meth:`unscale`
        (``on_nonfinite_loss="skip"``): a scaler settles it as a step it skipped itself (no-op
        without one)."""

    def state_dict(self) -> dict[str, Any]:
        """Scaler state (empty without a scaler)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scaler state."""


NoPrecision = Precision


class Autocast(Precision):
    """``torch.autocast`` on the model's device type, with a GradScaler for float16 on CUDA."""

    def __init__(self, dtype_name: str, device: torch.device, *, is_sharded: bool = False) -> None:
        self.device_type = device.type
        self.dtype = _DTYPES[dtype_name]
        self.scaler = None
        if self.dtype is torch.float16 and device.type == "cuda":
            self.scaler = _sharded_scaler(device) if is_sharded else torch.amp.GradScaler("cuda")

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def run_step(self, step_fn: Callable[..., Any], *args: Any) -> Any:
        with self.forward_context():
            return step_fn(*args)

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    @property
    def scales_loss(self) -> bool:
        return self.scaler is not None

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def drop_step(self, optimizer: torch.optim.Optimizer) -> None:
        # unscale_ recorded the inf/NaN it found: update() backs the scale off, as after a
        # step the scaler skipped, and lets the next window unscale_ again (without it, that
        # raises "unscale_() has already been called on this optimizer since the last update()")
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is None:
            return
        if "scaler" not in state:
            raise CheckpointError(
                "checkpoint holds no GradScaler state (it was written without float16 AMP on "
                "CUDA); resume with the precision settings it was trained with"
            )
        self.scaler.load_state_dict(state["scaler"])


def build_precision(
    use_amp: bool, amp_dtype: str, device: torch.device, *, is_sharded: bool = False
) -> Precision:
    """``Autocast`` when ``use_amp`` else full precision; ``is_sharded`` (FSDP2) picks the
    sharded GradScaler, which agrees across ranks on skipping a step with inf/NaN gradients."""
    return Autocast(amp_dtype, device, is_sharded=is_sharded) if use_amp else Precision()


def _sharded_scaler(device: torch.device) -> Any:
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    return ShardedGradScaler(device.type)
