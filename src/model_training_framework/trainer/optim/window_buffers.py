"""The model's buffers as an accumulation window starts, put back when ``skip`` drops it.

NOTE [dropped window buffers]: a forward pass in train mode changes buffers before the window
can be checked: BatchNorm adds the batch to its running statistics and counts it (in place), and
a module may also replace a buffer (``self.running = self.running * 0.9 + x.mean()`` rebinds the
name registered with ``register_buffer`` to a new tensor). A non-finite input (one bad sample)
would leave NaN there, which no optimizer step wrote and which every later save refuses, so the
run would die although ``on_nonfinite_loss="skip"`` dropped the window. Under ``skip`` each
window therefore starts by recording every buffer by its owning module and name, with a copy of
its values (into the copies kept from the previous window where they fit, so nothing is
allocated per step), and a dropped window puts each saved tensor back under its name with its
saved values: it leaves nothing behind, in the parameters or in the buffers. The cost is one
copy of the buffers per step, next to the per-step host read that ``skip`` costs anyway;
without ``skip`` nothing here runs.
"""

from __future__ import annotations

import torch

__all__ = ["WindowBuffers"]


class WindowBuffers:
    """Keeps every buffer of ``module`` (statistics and counters), by owning module and name.

    Args:
        module: the user's model (not a wrapper: its buffers are the same tensors).

    Example:
        >>> bn = torch.nn.BatchNorm1d(2)
        >>> kept = WindowBuffers(bn)
        >>> kept.save()
        >>> _ = bn(torch.tensor([[float("nan"), 0.0], [1.0, 2.0]]))
        >>> bn.running_mean = bn.running_mean * 2  # replaced, not updated in place
        >>> kept.restore()
        >>> bn.running_mean.isfinite().all().item(), int(bn.num_batches_tracked)
        (True, 0)
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self._module = module
        # (owning module, name, the tensor registered under it) as the window started
        self._saved: list[tuple[torch.nn.Module, str, torch.Tensor]] = []
        self._copies: list[torch.Tensor] = []

    def save(self) -> None:
        """Record the buffers as they are now (reusing the previous copies where they fit)."""
        # Module._buffers is the dict that register_buffer fills and that assigning a
        # registered name rebinds; reading it names each buffer's owner without building
        # dotted names per step.
        saved = [
            (owner, name, buffer)
            for owner in self._module.modules()
            for name, buffer in owner._buffers.items()
            if buffer is not None
        ]
        copies = self._copies
        with torch.no_grad():
            for idx, (_, _, buffer) in enumerate(saved):
                if idx < len(copies) and _fits(copies[idx], buffer):
                    copies[idx].copy_(buffer)
                elif idx < len(copies):  # replaced by another shape, dtype or device
                    copies[idx] = buffer.detach().clone()
                else:  # the first window, or more buffers than before
                    copies.append(buffer.detach().clone())
        del copies[len(saved) :]
        self._saved = saved

    def restore(self) -> None:
        """Put the buffers back as :meth:`save` found them: the same tensors, same values."""
        with torch.no_grad():
            for (owner, name, buffer), copy in zip(self._saved, self._copies, strict=True):
                buffer.copy_(copy)
                # rebinding the name leaves the saved tensor untouched; put it back under its
                # name (the same object, which wrappers such as DDP may still hold)
                owner._buffers[name] = buffer


def _fits(copy: torch.Tensor, buffer: torch.Tensor) -> bool:
    return (
        copy.shape == buffer.shape and copy.dtype == buffer.dtype and copy.device == buffer.device
    )
