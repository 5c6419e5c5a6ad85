"""The training step: one accumulation window of micro-batches, ending in the optimizer step.

:meth:`TrainStep.train_step` is the step's one owner. It takes up to
``gradient_accumulation_steps`` slots from the loader schedule, runs each micro-batch's
forward and backward pass, and closes the window with the optimizer step. The window's size,
whether its last micro-batch synchronised gradients, and the loader that closed it are local
to that call: between two calls no gradient is in flight, which is why a checkpoint (written
only between steps) never holds a partial window (NOTE [exact resume]).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from model_training_framework.trainer.checks import checked_loss
from model_training_framework.trainer.data.handover import fetch_scheduled
from model_training_framework.trainer.metrics.running import numeric_items

if TYPE_CHECKING:
    import torch

    from model_training_framework.trainer.data.schedule import Slot
    from model_training_framework.trainer.data.streams import LoaderStream
    from model_training_framework.trainer.parts import TrainerParts
    from model_training_framework.trainer.run import Run

__all__ = ["StepOutcome", "TrainStep"]

logger = logging.getLogger(__name__)


class StepOutcome(NamedTuple):
    """What one call of :meth:`TrainStep.train_step` did.

    Attributes:
        stepped: a window of at least one micro-batch closed with an optimizer step.
        epoch_done: the schedule has no more batches this epoch.
    """

    stepped: bool
    epoch_done: bool


class TrainStep:
    """Runs training steps for one ``fit``.

    Args:
        trainer: what the training step function and the hooks receive.
        run: this fit's loaders, schedule and per-fit components; ``run.state``'s
            ``global_step`` and ``skipped_nonfinite`` advance here.
        parts: the trainer's components (distributed context, user module, sharding,
            precision, optimizer stepper, hooks, batch mover).
        training_step: the user's ``fn(trainer, batch, batch_idx, dataloader_idx, name)``.
        model: the model to call (DDP-wrapped or compiled).
    """

    def __init__(
        self,
        trainer: Any,
        run: Run,
        parts: TrainerParts,
        *,
        training_step: Callable[..., Any],
        model: torch.nn.Module,
    ) -> None:
        self._trainer = trainer
        self._run = run
        self._state = run.state
        self._training_step = training_step
        self._model = model
        self._module = parts.module
        self._dist = parts.dist
        self._sharding = parts.sharding
        self._precision = parts.precision
        self._stepper = parts.stepper
        self._hooks = hooks = parts.hooks
        self._move_batch = parts.move_batch
        self._is_distributed = parts.dist.is_distributed
        self._has_batch_start_hooks = hooks.has("on_train_batch_start")
        self._has_batch_end_hooks = hooks.has("on_train_batch_end")
        self._has_backward_hooks = hooks.has("on_before_backward") or hooks.has("on_after_backward")

    def train_step(self) -> StepOutcome:
        """Take up to ``gradient_accumulation_steps`` slots from the schedule, one micro-batch
        each, then step the optimizer of the loader whose batch closed the window.

        A window ends early when the epoch does (the last planned batch, or a loader that ran
        dry with nothing to replace it); a window of at least one batch still ends in the
        optimizer step.
        """
        run = self._run
        schedule, grad_accum = run.schedule, run.grad_accum
        size, loader_idx, synced, epoch_done = 0, 0, False, False
        while size < grad_accum:
            slot = schedule.next_slot()
            if slot is None:
                epoch_done = True
                break
            done = self._micro_step(slot, size + 1)
            if done is None:  # a loader ran dry and nothing replaces it: the epoch is over
                epoch_done = True
                break
            size += 1
            synced, loader_idx = done
            if synced:
                break
        if size:
            self._optimizer_step(loader_idx, synced)
        return StepOutcome(stepped=size > 0, epoch_done=epoch_done)

    def _micro_step(self, slot: Slot, position: int) -> tuple[bool, int] | None:
        """One batch forward/backward at ``position`` (1-based) of the window.

        Returns:
            Whether the batch closes the window (it synchronised gradients) and its loader, or
            None when the slot's loader ran dry and nothing replaces it.
        """
        t0 = time.perf_counter()
        run = self._run
        fetched = self._fetch(slot)
        if fetched is None:
            return None
        slot, batch, indices = fetched
        idx, batch_idx = slot.loader_idx, slot.batch_idx
        name = run.names[idx]
        trainer, hooks = self._trainer, self._hooks
        if self._has_batch_start_hooks:
            hooks.call("on_train_batch_start", trainer, batch, batch_idx, idx, name)
        # NOTE [no_sync]: only the window's last micro-batch synchronises gradients (DDP's
        # all-reduce, FSDP2's reduce-scatter); the epoch's last planned batch closes a partial
        # window the same way (a window cut short by a loader that ran dry is synchronised by
        # the sharding strategy's finish_partial_window instead).
        closes = (
            position == run.grad_accum or run.schedule_position() == run.schedule.epoch_length()
        )
        t1 = time.perf_counter()
        precision = self._precision
        with self._sharding.gradient_sync(self._model, closes_window=closes):
            outputs = precision.run_step(self._training_step, trainer, batch, batch_idx, idx, name)
            loss = checked_loss(outputs)
            t2 = time.perf_counter()
            scale = run.loss_scales[idx]
            scaled = loss if scale == 1.0 else loss * scale
            if self._has_backward_hooks:
                hooks.call("on_before_backward", trainer, scaled)
            precision.backward(scaled)
            if self._has_backward_hooks:
                hooks.call("on_after_backward", trainer)
        # a device tensor (a float on the CPU): see NOTE [non-finite steps]
        loss = run.guard.keep_loss(loss)
        run.profiler.sync()
        t3 = time.perf_counter()
        num_samples = run.streams[idx].num_samples(batch, indices)
        run.metrics.add(idx, numeric_items(outputs, loss), num_samples)
        run.profiler.record_train(idx, t1 - t0, t2 - t1, t3 - t2)
        if self._has_batch_end_hooks:
            hooks.call("on_train_batch_end", trainer, batch, batch_idx, idx, name, outputs)
        return closes, idx

    def _fetch(self, slot: Slot) -> tuple[Slot, Any, Sequence[int] | None] | None:
        """The batch for ``slot`` (on the device) and its sample indices, folded into the
        fingerprint; a loader that runs dry hands over to the slot the schedule gives instead."""
        fetched = fetch_scheduled(self._run.schedule, slot, self._next_batch)
        if fetched is None:
            return None
        slot, batch = fetched
        batch = self._move_batch(batch)  # NOTE [device prefetch]; nothing on CPU
        stream = self._run.streams[slot.loader_idx]
        indices = stream.sample_indices(slot.pass_idx, slot.batch_idx)
        self._run.fingerprint.update(slot.loader_idx, slot.pass_idx, slot.batch_idx, indices)
        return slot, batch, indices

    def _next_batch(self, slot: Slot) -> Any:
        """The slot's batch from its stream; ``StopIteration`` when the loader ran dry (on
        any rank, for an iterable loader under DDP)."""
        stream = self._run.streams[slot.loader_idx]
        try:
            batch, ran_dry = stream.fetch(slot.pass_idx, slot.batch_idx), False
        except StopIteration:
            batch, ran_dry = None, True
        if stream.is_iterable and self._is_distributed:
            ran_dry = self._agree_ran_dry(stream, ran_dry)
        if ran_dry:
            raise StopIteration
        return batch

    def _agree_ran_dry(self, stream: LoaderStream, ran_dry: bool) -> bool:
        """An iterable loader ends its pass on every rank as soon as it runs dry on one (one
        small all-reduce per batch of an iterable loader); the others drop the batch they got."""
        agreed = bool(self._dist.reduce_max(int(ran_dry)))
        if agreed and not ran_dry:
            logger.warning(
                "train loader '%s' ran dry on another rank: rank %d drops the rest of its pass "
                "(give every rank an equal shard to use all its data)",
                stream.name,
                self._dist.rank,
            )
        return agreed

    def _optimizer_step(self, loader_idx: int, synced: bool) -> None:
        """Step the optimizer of ``loader_idx`` (see NOTE [gradient routing]); ``synced``:
        the window's last micro-batch synchronised gradients."""
        run, state, trainer, hooks = self._run, self._state, self._trainer, self._hooks
        opt_idx = run.optimizer_ids[loader_idx]
        t0 = time.perf_counter()
        if not synced:  # a window cut short ran without gradient sync
            self._sharding.finish_partial_window(self._module)
        if not self._stepper.step(
            opt_idx,
            state.global_step + 1,
            run.guard,
            before_step=lambda: hooks.call("on_before_optimizer_step", trainer, opt_idx),
            after_clip=lambda norm: hooks.call("on_gradient_clip", trainer, opt_idx, norm),
        ):
            state.skipped_nonfinite += 1
        state.global_step += 1
        hooks.call("on_after_optimizer_step", trainer, opt_idx)
        run.trace.at_step(state.global_step)
        run.profiler.sync()
        run.profiler.record_optimizer(loader_idx, time.perf_counter() - t0)
