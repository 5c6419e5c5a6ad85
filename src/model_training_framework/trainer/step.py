"""The training step: one accumulation window of micro-batches, ending in the optimizer step.

:meth:`TrainStep.train_step` is the step's one owner. It takes up to
``gradient_accumulation_steps`` slots from the loader schedule, runs each micro-batch's
forward and backward pass, and closes the window with the optimizer step. The window's size,
whether its last micro-batch synchronised gradients, and the loader that closed it are local
to that call: between two calls no gradient is in flight, which is why a checkpoint (written
only between steps) never holds a partial window (NOTE [exact resume]).

NOTE [lean step]: on a small model the framework's own Python per batch is a visible share of
the step (bench/per_batch_cost.py), so the step resolves once per fit what does not change:
hooks nobody overrides are not dispatched, the profiler's device sync and the trace window are
not called when off, the batch mover is not called on the CPU, and the fit's components are
bound to attributes instead of looked up per batch. A loader that runs dry still hands over
through ``fetch_scheduled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from torch import Tensor

from model_training_framework.trainer.checks import checked_loss
from model_training_framework.trainer.data.devices import BatchMover
from model_training_framework.trainer.data.fingerprint import FOLD_EVERY
from model_training_framework.trainer.data.handover import fetch_scheduled
from model_training_framework.trainer.optim.precision import Precision
from model_training_framework.trainer.optim.window_buffers import WindowBuffers
from model_training_framework.trainer.runtime.sharding import ReplicatedStrategy

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


# The three outcomes, made once (a step returns one of them).
_STEPPED = StepOutcome(stepped=True, epoch_done=False)
_STEPPED_EPOCH_DONE = StepOutcome(stepped=True, epoch_done=True)
_EPOCH_DONE = StepOutcome(stepped=False, epoch_done=True)


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
        self._is_distributed = parts.dist.is_distributed
        # Resolved once, so the hot path makes no call that does nothing (NOTE [lean step]).
        self._move_batch = None if type(parts.move_batch) is BatchMover else parts.move_batch
        self._read_hook_presence()
        hooks.on_change(self._read_hook_presence)  # a hook added during fit is called too
        # The fit's components: restores change them in place, never replace them.
        self._schedule = run.schedule
        self._streams = run.streams
        # per loader: a batch's sample count is the number of its sample indices
        self._counts_indices = [stream.counts_indices for stream in run.streams]
        self._optimizer_ids = run.optimizer_ids
        self._names = run.names
        self._loss_scales = run.loss_scales
        self._grad_accum = run.grad_accum
        self._guard = run.guard
        # a non-finite window leaves no metrics and no buffer changes (NOTE [dropped window
        # buffers] in optim/window_buffers.py)
        self._drops_windows = run.guard.is_skip
        self._window_buffers = WindowBuffers(parts.module)
        self._metrics = run.metrics
        self._fingerprint = run.fingerprint
        self._batch_records = run.fingerprint.records  # NOTE [deferred records]
        self._profiler = run.profiler
        self._profiler_sync = run.profiler.sync if run.profiler.syncs else None
        self._trace = run.trace if run.trace.is_enabled else None
        # Full precision: the step is a plain call and a plain backward; one process without
        # sharding: no gradient-sync context to enter per micro-batch.
        self._is_plain_precision = type(parts.precision) is Precision
        self._has_sync_context = not (
            isinstance(parts.sharding, ReplicatedStrategy) and not self._is_distributed
        )

    def _read_hook_presence(self) -> None:
        hooks = self._hooks
        self._has_batch_start_hooks = hooks.has("on_train_batch_start")
        self._has_batch_end_hooks = hooks.has("on_train_batch_end")
        self._has_backward_hooks = hooks.has("on_before_backward") or hooks.has("on_after_backward")
        self._has_before_step_hooks = hooks.has("on_before_optimizer_step")
        self._has_clip_hooks = hooks.has("on_gradient_clip")
        # called once per step: the step calls them itself (see _optimizer_step)
        self._after_step_calls = hooks.calls_of("on_after_optimizer_step")

    def train_step(self) -> StepOutcome:
        """Take up to ``gradient_accumulation_steps`` slots from the schedule, one micro-batch
        each, then step the optimizer of the loader whose batch closed the window.

        A window ends early when the epoch does (the last planned batch, or a loader that ran
        dry with nothing to replace it); a window of at least one batch still ends in the
        optimizer step.
        """
        next_slot, grad_accum = self._schedule.next_slot, self._grad_accum
        size, loader_idx, synced, epoch_done = 0, 0, False, False
        mark = None
        if self._drops_windows:
            mark = self._metrics.mark()
            self._window_buffers.save()
        while size < grad_accum:
            slot = next_slot()
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
        if not size:
            return _EPOCH_DONE
        if not self._optimizer_step(loader_idx, synced) and mark is not None:
            self._metrics.drop_since(mark)
            self._window_buffers.restore()
        return _STEPPED_EPOCH_DONE if epoch_done else _STEPPED

    def _micro_step(self, slot: Slot, position: int) -> tuple[bool, int] | None:
        """One batch forward/backward at ``position`` (1-based) of the window.

        Returns:
            Whether the batch closes the window (it synchronised gradients) and its loader, or
            None when the slot's loader ran dry and nothing replaces it.
        """
        t0 = perf_counter()
        fetched = self._fetch(slot)
        if fetched is None:
            return None
        slot, batch, indices = fetched
        idx, batch_idx = slot.loader_idx, slot.batch_idx
        name = self._names[idx]
        trainer, hooks = self._trainer, self._hooks
        if self._has_batch_start_hooks:
            hooks.call("on_train_batch_start", trainer, batch, batch_idx, idx, name)
        # NOTE [no_sync]: only the window's last micro-batch synchronises gradients (DDP's
        # all-reduce, FSDP2's reduce-scatter); the epoch's last planned batch closes a partial
        # window the same way (a window cut short by a loader that ran dry is synchronised by
        # the sharding strategy's finish_partial_window instead).
        closes = (
            position == self._grad_accum
            or self._run.schedule_position() == self._schedule.epoch_length()
        )
        t1 = perf_counter()
        if self._has_sync_context:
            with self._sharding.gradient_sync(self._model, closes_window=closes):
                loss, outputs, t2 = self._forward_backward(batch, batch_idx, idx, name)
        else:
            loss, outputs, t2 = self._forward_backward(batch, batch_idx, idx, name)
        # a device tensor (a float on the CPU): see NOTE [non-finite steps]
        loss = self._guard.keep_loss(loss)
        if self._profiler_sync is not None:
            self._profiler_sync()
        t3 = perf_counter()
        if indices is not None and self._counts_indices[idx]:
            num_samples = len(indices)
        else:
            num_samples = self._streams[idx].num_samples(batch, indices)
        self._metrics.add_outputs(idx, outputs, loss, num_samples)
        self._profiler.record_train(idx, t1 - t0, t2 - t1, t3 - t2)
        if self._has_batch_end_hooks:
            hooks.call("on_train_batch_end", trainer, batch, batch_idx, idx, name, outputs)
        return closes, idx

    def _forward_backward(
        self, batch: Any, batch_idx: int, idx: int, name: str
    ) -> tuple[torch.Tensor, Any, float]:
        """The user's step and the backward of its (scaled) loss; returns the loss, the step's
        outputs and the time the forward pass ended."""
        trainer, hooks = self._trainer, self._hooks
        if self._is_plain_precision:
            outputs = self._training_step(trainer, batch, batch_idx, idx, name)
        else:
            outputs = self._precision.run_step(
                self._training_step, trainer, batch, batch_idx, idx, name
            )
        # checked_loss's checks pass for a plain dict holding a loss tensor that requires grad:
        # that case skips its call (NOTE [lean step]); anything else gets the full check
        loss = outputs.get("loss") if type(outputs) is dict else None
        if type(loss) is not Tensor or not loss.requires_grad:
            loss = checked_loss(outputs)
        t2 = perf_counter()
        scale = self._loss_scales[idx]
        scaled = loss if scale == 1.0 else loss * scale
        if self._has_backward_hooks:
            hooks.call("on_before_backward", trainer, scaled)
        if self._is_plain_precision:
            scaled.backward()
        else:
            self._precision.backward(scaled)
        if self._has_backward_hooks:
            hooks.call("on_after_backward", trainer)
        return loss, outputs, t2

    def _fetch(self, slot: Slot) -> tuple[Slot, Any, Sequence[int] | None] | None:
        """The batch for ``slot`` (on the device) and its sample indices, folded into the
        fingerprint; a loader that runs dry hands over to the slot the schedule gives instead."""
        stream = self._streams[slot.loader_idx]
        if self._is_distributed and stream.is_iterable:
            fetched = fetch_scheduled(self._schedule, slot, self._next_batch)
        else:  # the usual case, without the handover's calls (NOTE [lean step])
            try:
                fetched = slot, stream.fetch(slot.pass_idx, slot.batch_idx)
            except StopIteration:
                replacement = self._schedule.mark_exhausted(slot.loader_idx)
                if replacement is None:
                    return None
                fetched = fetch_scheduled(self._schedule, replacement, self._next_batch)
        if fetched is None:
            return None
        slot, batch = fetched
        if self._move_batch is not None:
            batch = self._move_batch(batch)  # NOTE [device prefetch]; nothing on CPU
        loader_idx, pass_idx, batch_idx = slot
        indices = self._streams[loader_idx].sample_indices(pass_idx, batch_idx)
        # the fingerprint's update without a call per batch (NOTE [deferred records])
        records = self._batch_records
        records.append((loader_idx, pass_idx, batch_idx, indices))
        if len(records) >= FOLD_EVERY:
            self._fingerprint.write_records()
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

    def _optimizer_step(self, loader_idx: int, synced: bool) -> bool:
        """Step the optimizer of ``loader_idx`` (see NOTE [gradient routing]); ``synced``:
        the window's last micro-batch synchronised gradients.

        Returns:
            False when ``on_nonfinite_loss="skip"`` dropped the window: the global step still
            advances, but the optimizer did not step, so ``on_after_optimizer_step`` is not
            called.
        """
        state, trainer, hooks = self._state, self._trainer, self._hooks
        opt_idx = self._optimizer_ids[loader_idx]
        t0 = perf_counter()
        if not synced:  # a window cut short ran without gradient sync
            self._sharding.finish_partial_window(self._module)
        stepped = self._stepper.step(
            opt_idx,
            state.global_step + 1,
            self._guard,
            before_step=(
                (lambda: hooks.call("on_before_optimizer_step", trainer, opt_idx))
                if self._has_before_step_hooks
                else None
            ),
            after_clip=(
                (lambda norm: hooks.call("on_gradient_clip", trainer, opt_idx, norm))
                if self._has_clip_hooks
                else None
            ),
        )
        state.global_step += 1
        if stepped:
            # hooks.call("on_after_optimizer_step", ...) without its call (NOTE [lean step])
            for label, method in self._after_step_calls:
                try:
                    method(trainer, opt_idx)
                except Exception as err:
                    hooks.handle_error(label, "on_after_optimizer_step", err)
        else:
            state.skipped_nonfinite += 1
        if self._trace is not None:
            self._trace.at_step(state.global_step)
        if self._profiler_sync is not None:
            self._profiler_sync()
        self._profiler.record_optimizer(loader_idx, perf_counter() - t0)
        return stepped
