"""Non-finite losses and gradients, found on the device without a host sync per step.

NOTE [non-finite steps]: a step whose loss or gradients are not finite must never update weights
that a checkpoint then stores, and reading a device value every step would stall a GPU. So:

- every micro-batch's loss is kept as a device tensor (the metrics hold it anyway);
- gradients: with ``performance.clip_grad_norm`` the clip's total norm is checked (no extra
  pass). Otherwise, only with ``check_nonfinite_gradients`` (and always under ``"skip"``), the
  stepped optimizer's gradients get one fused on-device check before each optimizer step
  (``torch._amp_foreach_non_finite_check_and_unscale_`` with a scale of 1, the kernel GradScaler
  uses). That kernel reads and writes every gradient: 0.48 ms of a 7.0 ms step of a bf16 MLP
  with 1 GB of gradients on an H200, so it is off by default. Without it, NaN/inf gradients
  behind a finite loss make the weights non-finite, so the next step's loss is, and it is named
  there; right before a save, the save's own check refuses the weights (NOTE [finite
  checkpoints]). Under a GradScaler (float16 on CUDA) gradient overflow is the scaler's job: it
  skips that step and lowers its scale, so only the loss is checked;
- ``on_nonfinite_loss="raise"`` (default): the kept values are read once at each logging step
  and before every checkpoint save, whichever comes first. A bad value stops the run with an
  error naming the first bad optimizer step, before anything is saved, so the newest checkpoint
  is the last one written before that step and a rerun resumes from it. Between the bad step
  and the check the run trains on (its weights are discarded). Without logging or saves
  the values are checked every ``MAX_UNCHECKED_STEPS`` steps, so they never pile up;
- ``on_nonfinite_loss="skip"``: the window's values are read at every optimizer step (one host
  sync per step, plus one small all-reduce under DDP) and a bad window is dropped: no optimizer
  or scheduler step, gradients cleared, counted in ``train/skipped_nonfinite``, its metrics left
  out of the logged means and no ``on_after_optimizer_step`` hook; the global step still
  advances (step-based triggers count it).

NOTE [host reads on the CPU]: on the CPU a read of a tensor's value is no device sync, and
keeping device tensors costs more there than reading them: a stack and a check at every log
step, and slots to index per step. So when training runs on the CPU, ``HostFiniteGuard`` reads
each loss (``.item()``) and each gradient flag as it comes and remembers only the first bad
step; the metrics keep the loss as a float. The decisions are the same as on an accelerator:
the error is raised at the same points (log steps, saves, every ``MAX_UNCHECKED_STEPS``), names
the same step, and the collectives under DDP run at the same points. ``build_guard`` picks the
class by device type (``HOST_READ_DEVICE_TYPES``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model_training_framework.trainer.runtime.distributed import AgreedError

__all__ = [
    "HOST_READ_DEVICE_TYPES",
    "MAX_UNCHECKED_STEPS",
    "FiniteGuard",
    "GradientGroups",
    "HostFiniteGuard",
    "NonFiniteError",
    "build_guard",
    "group_by_device",
]

_BIG = 2**62
# Without logging or saves, values are still checked (and dropped) this often, in steps.
MAX_UNCHECKED_STEPS = 1000

# Gradients to check, one list per (device, dtype): the fused kernel takes one of each.
GradientGroups = list[tuple[torch.device, list[torch.Tensor]]]
# Devices whose values are read as they come (see NOTE [host reads on the CPU]).
HOST_READ_DEVICE_TYPES = frozenset({"cpu"})


def group_by_device(params: Sequence[torch.Tensor]) -> list[tuple[torch.device, list[Any]]]:
    """Parameters grouped by device and dtype (their gradients share both)."""
    groups: dict[tuple[torch.device, torch.dtype], list[Any]] = {}
    for param in params:
        groups.setdefault((param.device, param.dtype), []).append(param)
    return [(device, group) for (device, _), group in groups.items()]


class _Flags:
    """One float per optimizer step on a device, zero while that step's gradients are finite.

    The fused check only ever writes 1 into a slot, so after a clean check the buffer is still
    all zeros and needs no reset; a clip-norm probe overwrites its slot.
    """

    def __init__(self, device: torch.device) -> None:
        self.buffer = torch.zeros(MAX_UNCHECKED_STEPS, device=device)
        self.slots = list(self.buffer.split(1))  # views, made once
        self.one = torch.ones(1, device=device)


class NonFiniteError(AgreedError, FloatingPointError):
    """A loss or gradient was not finite (``on_nonfinite_loss="raise"``). The check is agreed
    across ranks, so every rank raises it together, naming the rank that had it."""


class FiniteGuard:
    """Keeps each step's losses and a gradient flag on the device; reads them when asked.

    Args:
        mode: ``"raise"`` or ``"skip"`` (``on_nonfinite_loss``).
        reduce_max: maps this rank's int to the maximum over ranks (identity in one process).
        rank: this process's rank; world_size: number of ranks (the error names the rank).

    Example:
        >>> guard = FiniteGuard("raise")                      # doctest: +SKIP
        >>> loss_value = guard.keep_loss(loss)                # every micro-batch
        >>> guard.close_window(step, grad_groups, None)       # every optimizer step
        >>> guard.raise_if_bad()                              # at log steps and before saves
    """

    def __init__(
        self,
        mode: str,
        *,
        reduce_max: Callable[[int], int] = lambda x: x,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.is_skip = mode == "skip"
        self._reduce_max = reduce_max
        self._rank, self._world_size = rank, world_size
        self._flags: dict[torch.device, _Flags] = {}
        self._losses: list[torch.Tensor] = []
        self._window_ends: list[int] = []  # len(self._losses) when each window closed
        self._steps: list[int] = []  # global step of each closed window (its flag slot)
        self._touched: set[torch.device] = set()  # devices whose flags hold this interval

    # ------------------------------------------------------------------ recording (hot path)
    def keep_loss(self, loss: torch.Tensor) -> Any:
        """Keep one micro-batch's loss until the next check.

        Returns:
            The value the step metrics record: the detached loss (a float for the host guard).
        """
        loss = loss.detach()
        self._losses.append(loss)
        return loss

    def close_window(self, step: int, grads: GradientGroups, norm: torch.Tensor | None) -> None:
        """``"raise"``: record optimizer step ``step``'s gradient check (no sync).

        Args:
            step: the global step being taken.
            grads: the stepped optimizer's gradients by device (empty: not checked here).
            norm: the clip's total norm, when clipping computed one (then ``grads`` is unused).
        """
        self._write_flag(len(self._steps), grads, norm)
        self._window_ends.append(len(self._losses))
        self._steps.append(step)
        if len(self._steps) >= MAX_UNCHECKED_STEPS:  # the same step on every rank
            self.raise_if_bad()

    def window_is_finite(self, grads: GradientGroups, norm: torch.Tensor | None) -> bool:
        """``"skip"``: whether the open window's losses and gradients are finite on every rank
        (one host read, and one collective under DDP); forgets them."""
        self._write_flag(0, grads, norm)
        mask = self._bad_mask(1)
        is_bad = mask is not None and bool(mask.any())
        if is_bad:
            self._reset_flags()
        self._losses.clear()
        self._touched.clear()
        return not self._reduce_max(int(is_bad))

    def _write_flag(self, slot: int, grads: GradientGroups, norm: torch.Tensor | None) -> None:
        if norm is not None:
            flags = self._flags_on(norm.device)
            torch.mul(norm.reshape(1), 0, out=flags.slots[slot])  # NaN unless finite
            return
        for device, group in grads:
            if not group:
                continue
            flags = self._flags_on(device)
            torch._amp_foreach_non_finite_check_and_unscale_(group, flags.slots[slot], flags.one)

    def _flags_on(self, device: torch.device) -> _Flags:
        flags = self._flags.get(device)
        if flags is None:
            flags = self._flags[device] = _Flags(device)
        self._touched.add(device)
        return flags

    # ------------------------------------------------------------------ checking
    def first_bad_step(self) -> tuple[int, str, int] | None:
        """The first optimizer step since the last check whose loss or gradients were not
        finite on any rank, which of the two, and the lowest rank where it was; forgets the
        checked values.

        One host read when all is finite, and one collective under DDP: call it on every rank
        at the same point.
        """
        local = self._local_first_bad()
        self._forget()
        # Encode (step, kind, rank) so that MAX over ranks picks the earliest step, the loss
        # first, then the lowest rank.
        encoded = 0
        if local is not None:
            kind = 2 * local[0] + (local[1] == "gradients")
            encoded = _BIG - (kind * self._world_size + self._rank)
        agreed = self._reduce_max(encoded)
        if agreed == 0:
            return None
        value, rank = divmod(_BIG - agreed, self._world_size)
        return value // 2, "gradients" if value % 2 else "loss", rank

    def raise_if_bad(self) -> None:
        """``"raise"``: stop when a step since the last check was not finite (see NOTE).

        A collective under DDP: call it on every rank at the same point.

        Raises:
            NonFiniteError: (a FloatingPointError) naming the first bad step and, under DDP,
                its rank; nothing was saved after it.
        """
        if self.is_skip:
            return
        checked_at = self._last_closed_step()
        found = self.first_bad_step()
        if found is None:
            return
        step, what, rank = found
        on_rank = f" on rank {rank}" if self._world_size > 1 else ""
        unless_gradients = (
            " (or NaN/inf gradients of the step before it, which check_nonfinite_gradients=true "
            "would name)"
            if what == "loss"
            else ""
        )
        raise NonFiniteError(
            f"training {what} not finite at global step {step}{on_rank}, the first such step "
            f"(found at "
            f"step {checked_at}){unless_gradients}. No checkpoint holds weights from step {step} "
            "on: a rerun resumes from the newest checkpoint, before it. Set "
            "on_nonfinite_loss='skip' to drop such steps, or lower the learning rate / enable "
            "gradient clipping (performance.clip_grad_norm)"
        )

    def _last_closed_step(self) -> int | None:
        return self._steps[-1] if self._steps else None

    def _local_first_bad(self) -> tuple[int, str] | None:
        num_steps = len(self._steps)
        if not num_steps:
            return None  # checks run at optimizer-step boundaries: no step, no values
        mask = self._bad_mask(num_steps)
        if mask is None or not bool(mask.any()):
            return None
        self._reset_flags()
        num_losses = len(self._losses)
        found = []
        for idx in mask.nonzero().flatten().tolist():
            if idx < num_losses:  # the first window that ends after this loss
                window = bisect.bisect_right(self._window_ends, idx)
                step = self._steps[window] if window < num_steps else self._steps[-1] + 1
                found.append((step, "loss"))
            else:
                found.append((self._steps[(idx - num_losses) % num_steps], "gradients"))
        return min(found, key=lambda item: (item[0], item[1] != "loss"))

    def _bad_mask(self, num_slots: int) -> torch.Tensor | None:
        """One boolean device tensor: which kept losses are not finite, then which gradient
        flags are set (the first ``num_slots`` of each device that holds some)."""
        parts = []
        if self._losses:
            parts.append(~torch.isfinite(_stack_scalars(self._losses)))
        for device in self._touched:
            parts.append(self._flags[device].buffer[:num_slots] != 0)
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return torch.cat([part.to(parts[0].device) for part in parts])

    def _reset_flags(self) -> None:
        for device in self._touched:
            self._flags[device].buffer.zero_()

    def _forget(self) -> None:
        self._losses.clear()
        self._window_ends.clear()
        self._steps.clear()
        self._touched.clear()


class HostFiniteGuard(FiniteGuard):
    """The guard for CPU training: reads each value as it comes (see NOTE [host reads on the
    CPU]) and keeps only the first bad step; raises at the same points as ``FiniteGuard``."""

    def __init__(
        self,
        mode: str,
        *,
        reduce_max: Callable[[int], int] = lambda x: x,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(mode, reduce_max=reduce_max, rank=rank, world_size=world_size)
        self._is_loss_bad = False  # a loss of the open window was not finite
        self._first_bad: tuple[int, str] | None = None
        self._last_step: int | None = None
        self._unchecked = 0
        self._flag = torch.zeros(1)
        self._one = torch.ones(1)

    def keep_loss(self, loss: torch.Tensor) -> Any:
        # A plain 0-d tensor's value is read with tolist(): the same Python number as item(),
        # without the scalar kernel item() dispatches to (its code is cold at every step: about
        # 1 us per batch in bench/per_batch_cost.py). Other losses (one-element tensors of
        # higher rank, subclasses) are read with item() as before.
        value = loss.tolist() if type(loss) is torch.Tensor and loss.dim() == 0 else loss.item()
        if not math.isfinite(value):
            self._is_loss_bad = True
        return value

    def close_window(self, step: int, grads: GradientGroups, norm: torch.Tensor | None) -> None:
        if grads or norm is not None or self._is_loss_bad:  # else nothing can be bad
            bad = self._window_fault(grads, norm)
            if bad is not None and self._first_bad is None:
                self._first_bad = (step, bad)
        self._last_step = step
        self._unchecked += 1
        if self._unchecked >= MAX_UNCHECKED_STEPS:  # the same collective as on an accelerator
            self.raise_if_bad()

    def window_is_finite(self, grads: GradientGroups, norm: torch.Tensor | None) -> bool:
        is_bad = self._window_fault(grads, norm) is not None
        return not self._reduce_max(int(is_bad))

    def _window_fault(self, grads: GradientGroups, norm: torch.Tensor | None) -> str | None:
        """What was not finite in the window just closed ("loss" first), or None."""
        is_loss_bad, self._is_loss_bad = self._is_loss_bad, False
        if norm is not None:
            are_grads_bad = not math.isfinite(norm.item())
        else:
            flag, is_checked = self._flag, False
            for _, group in grads:
                if group:
                    torch._amp_foreach_non_finite_check_and_unscale_(group, flag, self._one)
                    is_checked = True
            are_grads_bad = is_checked and bool(flag.item())
            if are_grads_bad:
                flag.zero_()
        if is_loss_bad:
            return "loss"
        return "gradients" if are_grads_bad else None

    def _last_closed_step(self) -> int | None:
        return self._last_step

    def _local_first_bad(self) -> tuple[int, str] | None:
        return self._first_bad

    def _forget(self) -> None:
        self._first_bad = None
        self._unchecked = 0


def build_guard(
    mode: str,
    device: torch.device,
    *,
    reduce_max: Callable[[int], int] = lambda x: x,
    rank: int = 0,
    world_size: int = 1,
) -> FiniteGuard:
    """The guard for training on ``device``: ``HostFiniteGuard`` on the CPU, else ``FiniteGuard``
    (see NOTE [host reads on the CPU])."""
    host = device.type in HOST_READ_DEVICE_TYPES
    guard_class = HostFiniteGuard if host else FiniteGuard
    return guard_class(mode, reduce_max=reduce_max, rank=rank, world_size=world_size)


def _stack_scalars(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """One 1-d tensor of one-element tensors (a single stack when they are alike)."""
    if all(v.dim() == 0 for v in values):
        return torch.stack(list(values)).float()
    device = values[0].device
    return torch.stack([v.reshape(()).float().to(device) for v in values])
