"""Optimizer steps: routing, clipping, scheduler intervals and gradient hygiene.

NOTE [gradient routing]: micro-batches accumulate gradients in one window of
``gradient_accumulation_steps`` micro-batches. When the window closes, only the optimizer mapped
to the loader whose batch closed the window steps (``per_loader_optimizer_id``). Afterwards the
gradients of *every* parameter (model and all optimizers) are cleared, so gradients that other
loaders' micro-batches left for other optimizers never leak into a later window. With one
optimizer (the default) this is ordinary gradient accumulation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.optim.nonfinite import FiniteGuard, group_by_device
from model_training_framework.trainer.optim.precision import Precision
from model_training_framework.trainer.torch_profiler import profiler_records

__all__ = ["OptimizerStepper", "ScheduledLR", "parse_schedulers"]

_INTERVALS = ("step", "epoch")


def _check_steps_without_arguments(scheduler: Any, idx: int) -> None:
    """The trainer calls ``scheduler.step()``; one that needs a metric cannot be stepped so.

    Raises:
        TypeError: ``step`` has a required argument (``ReduceLROnPlateau``'s ``metrics``).
    """
    try:
        signature = inspect.signature(scheduler.step)
    except (TypeError, ValueError):
        return  # no signature to read: trust it
    try:
        signature.bind()
    except TypeError:
        raise TypeError(
            f"schedulers[{idx}] is a {type(scheduler).__name__}, whose step() needs an argument "
            "(a metric to watch), and the trainer calls step() without one; leave it out of "
            "schedulers and step it yourself in an on_validation_end(trainer, metrics) hook, e.g. "
            "scheduler.step(metrics['val/loss']) (and return scheduler.state_dict() from the "
            "hook's state_dict() so that a resume restores it)"
        ) from None


@dataclass
class ScheduledLR:
    """A learning-rate scheduler, the optimizer it follows, and when it steps."""

    scheduler: Any
    optimizer_idx: int
    interval: str = "step"


def parse_schedulers(
    schedulers: Sequence[Any] | None, optimizers: Sequence[torch.optim.Optimizer]
) -> list[ScheduledLR]:
    """Validate the ``schedulers`` argument (items aligned with optimizers by index; None
    for an optimizer without a scheduler).

    Raises:
        TypeError: not a list, or an item is neither a scheduler nor a dict.
        ValueError: more schedulers than optimizers, an unknown interval, or a scheduler built
            on another of the trainer's optimizers than the one at its index.
    """
    num_optimizers = len(optimizers)
    if schedulers is None:
        return []
    if not isinstance(schedulers, (list, tuple)):
        raise TypeError(
            f"Expected list, got {type(schedulers).__name__} for schedulers; pass "
            "schedulers=[scheduler] (aligned with optimizers by index)"
        )
    if len(schedulers) > num_optimizers:
        raise ValueError(
            f"got {len(schedulers)} schedulers for {num_optimizers} optimizers; scheduler i "
            "follows optimizer i, so give at most one per optimizer"
        )
    parsed = []
    for idx, item in enumerate(schedulers):
        if item is None:  # optimizer idx has no scheduler: schedulers=[None, s]
            continue
        if isinstance(item, Mapping):
            unknown = set(item) - {"scheduler", "interval"}
            if "scheduler" not in item or unknown:
                raise ValueError(
                    f"schedulers[{idx}] must be {{'scheduler': s, 'interval': 'step'|'epoch'}}; "
                    f"got keys {sorted(item)}"
                )
            sched, interval = item["scheduler"], item.get("interval", "step")
        else:
            sched, interval = item, "step"
        interval = interval.lower() if isinstance(interval, str) else interval
        if interval not in _INTERVALS:
            raise ValueError(
                f"schedulers[{idx}] interval must be 'step' or 'epoch', got {interval!r}"
            )
        if not callable(getattr(sched, "step", None)):
            raise TypeError(f"schedulers[{idx}] has no step() method: got {type(sched).__name__}")
        _check_steps_without_arguments(sched, idx)
        _check_follows_its_optimizer(sched, idx, optimizers)
        parsed.append(ScheduledLR(sched, idx, interval))
    return parsed


def _check_follows_its_optimizer(
    sched: Any, idx: int, optimizers: Sequence[torch.optim.Optimizer]
) -> None:
    """Scheduler ``idx`` steps after optimizer ``idx``: one built on another of the trainer's
    optimizers would change that optimizer's learning rate at the wrong steps."""
    follows = getattr(sched, "optimizer", None)
    if follows is None or follows is optimizers[idx]:
        return
    owner = next((j for j, opt in enumerate(optimizers) if opt is follows), None)
    if owner is None:  # an optimizer the trainer does not hold: nothing to compare
        return
    slots = ", ".join("s" if j == owner else "None" for j in range(owner + 1))
    raise ValueError(
        f"schedulers[{idx}] follows optimizers[{owner}], but scheduler i steps after "
        f"optimizer i; put it at index {owner}, with None for an optimizer without a "
        f"scheduler: schedulers=[{slots}]"
    )


def _has_torch_zero_grad(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.zero_grad`` is torch's own (not overridden by a class or instance)."""
    return type(optimizer).zero_grad is torch.optim.Optimizer.zero_grad and "zero_grad" not in vars(
        optimizer
    )


class OptimizerStepper:
    """Steps one optimizer at the close of an accumulation window (see NOTE [gradient routing])."""

    def __init__(
        self,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[ScheduledLR],
        precision: Precision,
        model: torch.nn.Module,
        clip_grad_norm: float | None,
        *,
        check_every_step: bool = True,
    ) -> None:
        self.optimizers = list(optimizers)
        self.schedulers = list(schedulers)
        self._precision = precision
        self._model = model
        self._clip = clip_grad_norm
        self._params = [
            [p for group in opt.param_groups for p in group["params"]] for opt in self.optimizers
        ]
        self._step_scheds = [
            [s for s in schedulers if s.interval == "step" and s.optimizer_idx == i]
            for i in range(len(self.optimizers))
        ]
        self._epoch_scheds = [s for s in schedulers if s.interval == "epoch"]
        # Gradients are checked before each step, by device and dtype, when asked to (see NOTE
        # [non-finite steps]); never under a GradScaler. A clip's total norm is always checked.
        self._checks_norm = precision.checks_gradients
        checks = precision.checks_gradients and check_every_step
        self._checked = [group_by_device(params) if checks else [] for params in self._params]
        in_optimizers = {id(p) for params in self._params for p in params}
        self._params_outside = [p for p in model.parameters() if id(p) not in in_optimizers]
        self._scales_loss = precision.scales_loss  # unscale and step through the GradScaler
        self._clears_directly = all(_has_torch_zero_grad(opt) for opt in self.optimizers)

    def step(
        self,
        optimizer_idx: int,
        global_step: int,
        guard: FiniteGuard,
        *,
        before_step: Callable[[], None] | None = None,
        after_clip: Callable[[torch.Tensor], None] | None = None,
    ) -> bool:
        """Unscale and clip the gradients of optimizer ``optimizer_idx``, call ``before_step``
        (gradients are final then), check them (see NOTE [non-finite steps]), step the
        optimizer and its step schedulers, then clear all gradients.

        Args:
            optimizer_idx: the optimizer of the loader whose batch closed the window.
            global_step: the step being taken (recorded with the gradient check).
            guard: keeps the check for later (``"raise"``) or reads it now (``"skip"``).
            before_step: called once the gradients are final (None: nothing to call).
            after_clip: called with the total norm before clipping, when clipping is on.

        Returns:
            False when ``"skip"`` dropped the window (non-finite loss or gradients).
        """
        optimizer = self.optimizers[optimizer_idx]
        if self._scales_loss:
            self._precision.unscale(optimizer)
        norm = None
        if self._clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self._params[optimizer_idx], self._clip)
            if after_clip is not None:
                after_clip(norm)
        if before_step is not None:
            before_step()
        if norm is not None:
            grads, norm = [], norm if self._checks_norm else None
        else:
            checked = self._checked[optimizer_idx]  # empty unless gradients are checked per step
            grads = (
                [
                    (device, [p.grad for p in group if p.grad is not None])
                    for device, group in checked
                ]
                if checked
                else []
            )
        if guard.is_skip:
            stepped = guard.window_is_finite(grads, norm)
        else:
            guard.close_window(global_step, grads, norm)
            stepped = True
        if stepped:
            if self._scales_loss:
                self._precision.step(optimizer)
            else:
                optimizer.step()
            for sched in self._step_scheds[optimizer_idx]:
                sched.scheduler.step()
        elif self._scales_loss:
            self._precision.drop_step(optimizer)
        self.zero_grad()
        return stepped

    def zero_grad(self) -> None:
        """Clear the gradients of the model and of every optimizer's parameters.

        NOTE [clearing gradients]: ``Optimizer.zero_grad(set_to_none=True)`` only sets each
        gradient of its parameter groups to None, inside a profiler range that costs about
        7 us a call on the CPU, more than everything else the framework does per batch. So
        optimizers that keep torch's own ``zero_grad`` are cleared here directly (the groups
        are read at every call: ``add_param_group`` is seen); an optimizer with its own
        ``zero_grad``, and every optimizer while the torch profiler records, get the call.
        """
        if self._clears_directly and not profiler_records():
            for optimizer in self.optimizers:
                for group in optimizer.param_groups:
                    for param in group["params"]:
                        if param.grad is not None:
                            param.grad = None
        else:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
        for param in self._params_outside:  # model parameters that no optimizer clears
            param.grad = None

    def end_epoch(self) -> None:
        """Step the schedulers whose interval is ``"epoch"``."""
        for sched in self._epoch_scheds:
            sched.scheduler.step()

    def learning_rates(self) -> list[float]:
        """Current learning rate of each optimizer (its first parameter group)."""
        return [float(opt.param_groups[0]["lr"]) for opt in self.optimizers]

    def scheduler_state_dicts(self) -> list[dict[str, Any]]:
        """The schedulers' states (optimizer states belong to the sharding strategy)."""
        return [s.scheduler.state_dict() for s in self.schedulers]

    def load_scheduler_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Restore :meth:`scheduler_state_dicts` output.

        Raises:
            CheckpointError: the checkpoint holds another number of schedulers.
        """
        if len(states) != len(self.schedulers):
            raise CheckpointError(
                f"checkpoint holds {len(states)} scheduler(s); this run has "
                f"{len(self.schedulers)}: resume with the same schedulers as the run that wrote it"
            )
        for sched, sched_state in zip(self.schedulers, states, strict=True):
            sched.scheduler.load_state_dict(sched_state)
