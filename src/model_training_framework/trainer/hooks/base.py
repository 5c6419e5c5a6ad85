"""What a hook is: ``TrainerHooks``, the base class users subclass (every method a no-op), where
each method fires in ``fit`` (pseudocode in its docstring), and ``HOOK_METHODS``, their names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HOOK_METHODS", "TrainerHooks"]


class TrainerHooks:
    """Base class for user hooks; every method is a no-op, override the ones you need.

    Where each method fires in ``GenericTrainer.fit`` (pseudocode)::

        on_train_start(trainer)                         # after setup and resume
        try:
            for epoch in epochs:
                on_epoch_start(trainer, epoch)
                for batch in schedule:                  # every micro-batch
                    on_train_batch_start(trainer, batch, batch_idx, dataloader_idx, name)
                    outputs = training_step(...)        # forward
                    on_before_backward(trainer, loss)   # loss as it is back-propagated
                    loss.backward()
                    on_after_backward(trainer)
                    on_train_batch_end(trainer, batch, batch_idx, dataloader_idx, name, outputs)
                    if the accumulation window closes:
                        # with performance.clip_grad_norm, after clipping:
                        on_gradient_clip(trainer, optimizer_idx, total_norm)
                        on_before_optimizer_step(trainer, optimizer_idx)   # grads unscaled, clipped
                        if on_nonfinite_loss="skip" finds the window not finite:
                            drop it (global_step still advances; no after-step hook)
                        else:
                            optimizer.step()
                            on_after_optimizer_step(trainer, optimizer_idx)
                    if validation is due:
                        on_validation_start(trainer)
                        for val batch:                  # until a stop request (see below)
                            outputs = validation_step(...)
                            on_validation_batch_end(trainer, batch, batch_idx,
                                                    dataloader_idx, name, outputs)
                        on_validation_end(trainer, metrics)
                    if a checkpoint is due:
                        on_checkpoint_save(trainer, payload)   # may add entries
                on_epoch_end(trainer, epoch, metrics)
        except BaseException as exception:
            on_exception(trainer, exception)            # then re-raised
        on_train_end(trainer, fit_result)

        # when resuming:  on_checkpoint_load(trainer, payload) before on_train_start
        # a stop request (preemption signal, Ctrl-C) during validation ends the pass before
        # its next batch, without on_validation_end; the resumed run redoes the whole pass
        # (on_validation_start again) right after on_train_start

    Hooks written for the reference framework's signatures of ``on_train_batch_start``,
    ``on_train_end`` and ``on_validation_start`` still work, with a ``DeprecationWarning`` when
    they are added (see :mod:`~model_training_framework.trainer.legacy_hooks`).

    State: a hook with state that must survive a restart returns it from :meth:`state_dict`
    and restores it in :meth:`load_state_dict`; the trainer saves it in every checkpoint.

    Example:
        >>> class CountSteps(TrainerHooks):
        ...     def __init__(self):
        ...         self.num_steps = 0
        ...     def on_after_optimizer_step(self, trainer, optimizer_idx):
        ...         self.num_steps += 1
        ...     def state_dict(self):
        ...         return {"num_steps": self.num_steps}
        ...     def load_state_dict(self, state):
        ...         self.num_steps = state["num_steps"]
    """

    def on_train_start(self, trainer: Any) -> None:
        """Once per ``fit``, after setup (and resume), before the first batch."""

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Once per ``fit`` with the ``FitResult``, after the final checkpoint."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """At the start of every epoch (0-based ``epoch``)."""

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict) -> None:
        """At the end of every epoch, with the metrics logged for it."""

    def on_train_batch_start(
        self, trainer: Any, batch: Any, batch_idx: int, dataloader_idx: int, dataloader_name: str
    ) -> None:
        """Before the training step of every micro-batch."""

    def on_train_batch_end(
        self,
        trainer: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
        dataloader_name: str,
        outputs: dict,
    ) -> None:
        """After the training step (and backward) of every micro-batch, with its outputs.

        It fires before the accumulation window closes, so under ``on_nonfinite_loss="skip"``
        the micro-batches of a window that is then dropped had their call too (``outputs``
        holds the non-finite loss); ``trainer.skipped_nonfinite`` counts the dropped windows.
        """

    def on_validation_start(self, trainer: Any) -> None:
        """Before a validation pass (the model is already in eval mode)."""

    def on_validation_end(self, trainer: Any, metrics: dict) -> None:
        """After a validation pass, with its aggregated metrics (not after a pass that a stop
        request cut short: the resumed run redoes that pass)."""

    def on_validation_batch_end(
        self,
        trainer: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
        dataloader_name: str,
        outputs: dict,
    ) -> None:
        """After the validation step of every validation batch, with its outputs."""

    def on_before_backward(self, trainer: Any, loss: Any) -> None:
        """Before backward of every micro-batch, with the loss tensor that is back-propagated
        (already multiplied by the loader's loss weight and divided by the accumulation steps).
        """

    def on_after_backward(self, trainer: Any) -> None:
        """After backward of every micro-batch (gradients of the window so far are in .grad)."""

    def on_gradient_clip(self, trainer: Any, optimizer_idx: int, total_norm: Any) -> None:
        """After ``performance.clip_grad_norm`` clipped the gradients of optimizer
        ``optimizer_idx``; ``total_norm`` is their norm before clipping, a 0-d tensor on the
        device (reading it with ``float()`` synchronises the GPU)."""

    def on_before_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        """Gradients are final (unscaled, clipped); the optimizer is about to step.

        Under ``on_nonfinite_loss="skip"`` the non-finite check reads the gradients after this
        hook, so it fires for a window that is then dropped too.
        """

    def on_after_optimizer_step(self, trainer: Any, optimizer_idx: int) -> None:
        """Right after the optimizer ``optimizer_idx`` stepped; not after a window that
        ``on_nonfinite_loss="skip"`` dropped (the optimizer did not step)."""

    def on_checkpoint_save(self, trainer: Any, checkpoint: dict) -> None:
        """Before a checkpoint is written; may add entries to the ``checkpoint`` payload."""

    def on_checkpoint_load(self, trainer: Any, checkpoint: dict) -> None:
        """After a checkpoint was loaded, with its payload."""

    def on_exception(self, trainer: Any, exception: BaseException) -> None:
        """``fit`` is failing with ``exception``; it is re-raised afterwards."""

    def configure(self, config: Any) -> None:
        """Called once when the hook is registered, with the trainer's ``GenericTrainerConfig``,
        before ``fit`` builds anything from it. Built-in hooks switch on trainer features here
        (``EarlyStoppingHook`` sets the ``early_stopping_*`` fields); most hooks need nothing.
        """

    def state_dict(self) -> dict:
        """State to save in checkpoints (empty by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


HOOK_METHODS: tuple[str, ...] = tuple(
    name
    for name in vars(TrainerHooks)
    if name.startswith("on_") and callable(vars(TrainerHooks)[name])
)
