"""The model's buffers as an accumulation window starts, put back when ``skip`` drops it.

NOTE [dropped window buffers]: a forward pass in train mode changes buffers before the window
can be checked: BatchNorm adds the batch to its running statistics and counts it. A non-finite
input (one bad sample) would leave NaN there, which no optimizer step wrote and which every
later save refuses, so the run would die although ``on_nonfinite_loss="skip"`` dropped the
window. Under ``skip`` each window therefore starts by copying the buffers (into the copies
kept from the previous window, so nothing is allocated per step) and a dropped window copies
them back: it leaves nothing behind, in the parameters or in the buffers. The cost is one copy
of the buffers per step, next to the per-step host read that ``skip`` costs anyway.
"""

from __future__ import annotations

import torch

__all__ = ["WindowBuffers"]


class WindowBuffers:
    """Keeps a copy of ``module``'s buffers (all of them: statistics and counters).

    Args:
        module: the user's model (not a wrapper: its buffers are the same tensors).

    Example:
        >>> bn = torch.nn.BatchNorm1d(2)
        >>> kept = WindowBuffers(bn)
        >>> kept.save()
        >>> _ = bn(torch.tensor([[float("nan"), 0.0], [1.0, 2.0]]))
        >>> kept.restore()
        >>> bn.running_mean.isfinite().all().item(), int(bn.num_batches_tracked)
        (True, 0)
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self._module = module
        self._buffers: list[torch.Tensor] = []
        self._copies: list[torch.Tensor] = []

    def save(self) -> None:
        """Copy the buffers as they are now (reusing the previous copies where they fit)."""
        buffers = list(self._module.buffers())
        with torch.no_grad():
            if self._fits(buffers):
                for copy, buffer in zip(self._copies, buffers, strict=True):
                    copy.copy_(buffer)
            else:  # the first window, or a buffer was replaced or resized since
                self._buffers = buffers
                self._copies = [buffer.detach().clone() for buffer in buffers]

    def restore(self) -> None:
        """Put the buffers back as :meth:`save` found them."""
        with torch.no_grad():
            for buffer, copy in zip(self._buffers, self._copies, strict=True):
                buffer.copy_(copy)

    def _fits(self, buffers: list[torch.Tensor]) -> bool:
        return len(buffers) == len(self._buffers) and all(
            new is old and new.shape == copy.shape
            for new, old, copy in zip(buffers, self._buffers, self._copies, strict=True)
        )
