"""Non-finite losses and gradients, found on the device without a host sync per step.

NOTE [non-finite steps]: a step whose loss or gradients are not finite must never update weights
that a checkpoint then stores, and reading a device value every step would stall a GPU. So:

- every micro-batch's loss is kept as a device tensor (the metrics hold it anyway);
- before each optimizer step the gradients of the stepped optimizer get one fused on-device
  check (``torch._amp_foreach_non_finite_check_and_unscale_`` with a scale of 1, the kernel
  GradScaler uses), or, with ``performance.clip_grad_norm``, the clip's total norm is reused
  (no extra pass). Under a GradScaler (float16 on CUDA) gradient overflow is the scaler's job:
  it skips that step and lowers its scale, so only the loss is checked;
- ``on_nonfinite_loss="raise"`` (default): the kept values are read once at each logging step
  and before every checkpoint save, whichever comes first. A bad value stops the run with an
  error naming the first bad optimizer step, before anything is saved, so the newest checkpoint
  is the last one written before that step and a rerun resumes from it. Between the bad step
  and the check the run trains on (its weights are discarded). Without logging or saves
  the values are checked every ``MAX_UNCHECKED_STEPS`` steps, so they never pile up;
- ``on_nonfinite_loss="skip"``: the window's values are read at every optimizer step (one host
  sync per step, plus one small all-reduce under DDP) and a bad window is dropped: no optimizer
  or scheduler step, gradients cleared, counted in ``train/skipped_nonfinite``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["FiniteGuard", "gradient_flag"]

_BIG = 2**62
# Without logging or saves, values are still checked (and dropped) this often, in steps.
MAX_UNCHECKED_STEPS = 1000


def gradient_flag(grads: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """A one-element device tensor: 0 when every gradient is finite, 1 otherwise (no sync).

    Gradients are grouped by device and dtype (the fused kernel takes one of each); the flag
    lives on the first group's device.
    """
    if not grads:
        return None
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for grad in grads:
        if grad.is_sparse:
            grad = grad.coalesce()._values()
        groups.setdefault((grad.device, grad.dtype), []).append(grad)
    flag: torch.Tensor | None = None
    for (device, _), group in groups.items():
        found = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(group, found, _ones(device))
        flag = found if flag is None else flag + found.to(flag.device)
    return flag


_ONES: dict[torch.device, torch.Tensor] = {}


def _ones(device: torch.device) -> torch.Tensor:
    one = _ONES.get(device)
    if one is None:
        one = _ONES[device] = torch.ones(1, device=device)
    return one


class FiniteGuard:
    """Keeps each step's losses and gradient probe on the device; reads them when asked.

    A probe is a one-element device tensor that is non-zero (or NaN) when the step's gradients
    were not finite: :func:`gradient_flag`, or ``norm * 0`` for a clip norm.

    Args:
        mode: ``"raise"`` or ``"skip"`` (``on_nonfinite_loss``).
        reduce_max: maps this rank's int to the maximum over ranks (identity in one process).

    Example:
        >>> guard = FiniteGuard("raise")                      # doctest: +SKIP
        >>> guard.add_loss(loss)                              # every micro-batch
        >>> guard.close_window(step, probe)                   # every optimizer step
        >>> guard.raise_if_bad()                              # at log steps and before saves
    """

    def __init__(self, mode: str, *, reduce_max: Callable[[int], int] = lambda x: x) -> None:
        self.is_skip = mode == "skip"
        self._reduce_max = reduce_max
        self._losses: list[torch.Tensor] = []
        self._loss_steps: list[int] = []  # per closed window: its step, once per loss
        self._probes: list[torch.Tensor] = []
        self._probe_steps: list[int] = []
        self._last_step = 0
        self._num_windows = 0

    # ------------------------------------------------------------------ recording (hot path)
    def add_loss(self, loss: torch.Tensor) -> None:
        """Keep one micro-batch's (detached) loss until the next check."""
        self._losses.append(loss)

    def close_window(self, step: int, probe: torch.Tensor | None) -> None:
        """Record optimizer step ``step``'s gradient ``probe`` (no sync)."""
        self._loss_steps.extend([step] * (len(self._losses) - len(self._loss_steps)))
        if probe is not None:
            self._probes.append(probe)
            self._probe_steps.append(step)
        self._last_step = step
        self._num_windows += 1
        if self._num_windows >= MAX_UNCHECKED_STEPS:  # same step on every rank
            self.raise_if_bad()

    def window_is_finite(self, probe: torch.Tensor | None) -> bool:
        """``"skip"``: whether the open window's losses and gradient ``probe`` are finite on
        every rank (one host read, and one collective under DDP); forgets them."""
        mask = _bad_mask(self._losses, [] if probe is None else [probe])
        self._forget()
        return not self._reduce_max(int(mask is not None and bool(mask.any())))

    # ------------------------------------------------------------------ checking
    def first_bad_step(self) -> tuple[int, str] | None:
        """The first optimizer step since the last check whose loss or gradients were not
        finite on any rank, and which of the two; forgets the checked values.

        One host read when all is finite, and one collective under DDP: call it on every rank
        at the same point.
        """
        local = self._local_first_bad()
        self._forget()
        # Encode (step, kind) so that MAX over ranks picks the earliest step, the loss first.
        encoded = 0 if local is None else _BIG - (2 * local[0] + (local[1] == "gradients"))
        agreed = self._reduce_max(encoded)
        if agreed == 0:
            return None
        value = _BIG - agreed
        return value // 2, "gradients" if value % 2 else "loss"

    def raise_if_bad(self) -> None:
        """``"raise"``: stop when a step since the last check was not finite (see NOTE).

        A collective under DDP: call it on every rank at the same point.

        Raises:
            FloatingPointError: naming the first bad step; nothing was saved after it.
        """
        if self.is_skip:
            return
        checked_at = self._last_step
        found = self.first_bad_step()
        if found is None:
            return
        step, what = found
        raise FloatingPointError(
            f"training {what} not finite at global step {step}, the first such step (found at "
            f"step {checked_at}). No checkpoint holds weights from step {step} on: a rerun "
            "resumes from the newest checkpoint, before it. Set on_nonfinite_loss='skip' to "
            "drop such steps, or lower the learning rate / enable gradient clipping "
            "(performance.clip_grad_norm)"
        )

    def _local_first_bad(self) -> tuple[int, str] | None:
        mask = _bad_mask(self._losses, self._probes)
        if mask is None or not bool(mask.any()):
            return None
        num_losses = len(self._losses)
        found = []
        for idx in mask.nonzero().flatten().tolist():
            if idx < num_losses:
                found.append((self._loss_steps[idx], "loss"))
            else:
                found.append((self._probe_steps[idx - num_losses], "gradients"))
        return min(found, key=lambda item: (item[0], item[1] != "loss"))

    def _forget(self) -> None:
        self._num_windows = 0
        self._losses.clear()
        self._loss_steps.clear()
        self._probes.clear()
        self._probe_steps.clear()


def _bad_mask(
    losses: Sequence[torch.Tensor], probes: Sequence[torch.Tensor]
) -> torch.Tensor | None:
    """One boolean device tensor: which losses are not finite, then which probes are set."""
    parts = []
    if losses:
        device = losses[0].device
        values = torch.stack([v.reshape(()).float().to(device) for v in losses])
        parts.append(~torch.isfinite(values))
    if probes:
        device = parts[0].device if parts else probes[0].device
        parts.append(torch.cat([p.reshape(-1).float().to(device) for p in probes]) != 0)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts)
