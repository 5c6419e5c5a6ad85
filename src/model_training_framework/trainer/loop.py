"""The fit loop: epochs of training steps, and what happens between steps.

At each optimizer-step boundary the loop logs, validates, checks early stopping, saves a
checkpoint when one is due and honours a stop request; at each epoch end it also steps the
epoch schedulers and starts the next epoch. Every decision that changes what the ranks do next
is agreed by all ranks. NOTE [exact resume]: checkpoints are written only here, between two
training steps, so no partial gradients are in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_training_framework.text import counted
from model_training_framework.trainer.config import (
    GenericTrainerConfig,
    SamplingStrategy,
    ValidationFrequency,
)
from model_training_framework.trainer.loggers import Logger, NullLogger
from model_training_framework.trainer.metrics.running import loader_shares, lr_key
from model_training_framework.trainer.parts import TrainerParts
from model_training_framework.trainer.results import FitResult, FitStatus
from model_training_framework.trainer.run import Run
from model_training_framework.trainer.runtime.preemption import StopRequest
from model_training_framework.trainer.state.payload import build_payload
from model_training_framework.trainer.state.registry import note_hook_entries
from model_training_framework.trainer.step import TrainStep
from model_training_framework.trainer.validation import validate

if TYPE_CHECKING:
    import torch

__all__ = ["FitLoop"]

logger = logging.getLogger(__name__)

_FAR = 2**62  # no periodic event: "never" as a step count
_STEP, _EPOCH = "step", "epoch"  # where a validation cut short was due (TrainState)
_STOP_STATUS = {
    StopRequest.PREEMPT: FitStatus.PREEMPTED,
    StopRequest.INTERRUPT: FitStatus.INTERRUPTED,
}


class FitLoop:
    """Runs one fit's epochs (after its state was restored or started fresh).

    Args:
        trainer: what hooks and step functions receive.
        run: this fit's components; ``run.state`` holds the counters.
        parts: the trainer's components (distributed context, hooks, stepper, ...).
        training_step: the user's training step (see :class:`TrainStep`).
        validation_step: the user's validation step (None: no validation loaders).
        model: the model to call (DDP-wrapped or compiled).
    """

    def __init__(
        self,
        trainer: Any,
        run: Run,
        parts: TrainerParts,
        *,
        config: GenericTrainerConfig,
        training_step: Callable[..., Any],
        validation_step: Callable[..., Any] | None,
        model: torch.nn.Module,
    ) -> None:
        self._trainer = trainer
        self._run = run
        self._state = run.state
        self._step = TrainStep(trainer, run, parts, training_step=training_step, model=model)
        self._parts = parts
        self._dist = parts.dist
        self._hooks = parts.hooks
        self._config = config
        self._logger: Logger = NullLogger()
        self._validation_step = validation_step
        # NOTE [quiet steps]: the first step after which a boundary may have work (0: the next).
        self._next_due = 0
        self._profile_logged_step = -1  # the last step whose profiling means were logged
        self._may_skip_boundaries = not (
            parts.dist.is_distributed or config.checkpoint.save_every_n_minutes
        )

    def fit(self, logger: Logger) -> FitResult:
        """Train (see :meth:`train`), logging to ``logger``, then :meth:`finish`."""
        self._logger = logger
        return self.finish(self.train())

    # ------------------------------------------------------------------ epochs
    def train(self) -> FitStatus:
        """Train until the limits, an early stop or a stop request; the status says which."""
        run, state = self._run, self._state
        plan = run.plan
        if state.stopped_early_under == plan.limits():  # NOTE [finished rerun] in run.py
            return FitStatus.EARLY_STOPPED
        state.stopped_early_under = None
        self._parts.module.train()
        self._parts.stepper.zero_grad()
        if state.pending_validation is not None:
            status = self._redo_validation()
            if status is not None:
                return status
        while state.epoch < plan.max_epochs and not plan.steps_done(state.global_step):
            if state.epoch_fresh:
                self._hooks.call("on_epoch_start", self._trainer, state.epoch)
                state.epoch_fresh = False
            run.progress.start(
                run.schedule.epoch_length(), state.epoch, initial_batch=run.schedule_position()
            )
            status = self._run_epoch()
            if status is not None:
                return status
        return FitStatus.COMPLETED

    def _run_epoch(self) -> FitStatus | None:
        state, train_step = self._state, self._step.train_step
        max_steps = self._run.plan.max_steps
        end_step = _FAR if max_steps is None else max_steps  # plan.steps_done, as a comparison
        preemption, no_request = self._run.preemption, StopRequest.NONE
        while state.global_step < end_step:
            outcome = train_step()
            if outcome.stepped:
                # NOTE [quiet steps], checked here to save a call per step
                if state.global_step < self._next_due and preemption.local_request is no_request:
                    if outcome.epoch_done:
                        return self._end_epoch()
                    continue
                status = self._after_optimizer_step()
                if status is not None:
                    return status
            if outcome.epoch_done:
                return self._end_epoch()
        return None

    # ------------------------------------------------------------------ boundaries
    # NOTE [quiet steps]: most optimizer steps log nothing, validate nothing, save nothing and
    # see no stop request. In one process without a time-based checkpoint trigger, the loop
    # computes after each boundary the next step at which a periodic event can fall due
    # (logging, profiling scalars, validation, step-based checkpoint, max_steps) and skips
    # the boundary's checks before it unless a stop signal arrived; every other step runs the
    # full boundary below, with the same decisions as at every step. Under DDP every step is
    # a full boundary: the stop request is agreed with the other ranks at each one.
    def _after_optimizer_step(self) -> FitStatus | None:
        step = self._state.global_step
        if step < self._next_due and self._run.preemption.local_request is StopRequest.NONE:
            return None
        if self._may_skip_boundaries:
            self._next_due = self._next_due_step(step)
        run, config = self._run, self._config
        # the last step of a max_steps run flushes the partial windows of both intervals
        is_last_step = run.plan.steps_done(step)
        log_step_metrics = _is_due_or_last(step, config.log_loss_every_n_steps, is_last_step)
        # _train_metrics makes a new dict: it is this boundary's metrics
        metrics: dict[str, float] = self._train_metrics() if log_step_metrics else {}
        if _is_due_or_last(step, config.logging.log_scalars_every_n_steps, is_last_step):
            metrics.update(self._pop_profile_means())
        validation = config.validation
        if (
            validation.frequency == ValidationFrequency.EVERY_N_STEPS
            and step % validation.every_n_steps == 0
        ):
            self._validate_into(metrics, _STEP)
        self.log(metrics)
        if log_step_metrics:
            run.progress.update(run.schedule_position(), self._state.last_metrics)
        return self._boundary_decisions(metrics, epoch_end=False)

    def _next_due_step(self, step: int) -> int:
        """The first step after ``step`` at which a periodic boundary event can be due."""
        config = self._config
        validation = config.validation
        intervals = [
            config.log_loss_every_n_steps,
            config.logging.log_scalars_every_n_steps,
            config.checkpoint.save_every_n_steps,
            validation.every_n_steps
            if validation.frequency == ValidationFrequency.EVERY_N_STEPS
            else None,
        ]
        due = min(((step // n + 1) * n for n in intervals if n), default=step + _FAR)
        max_steps = self._run.plan.max_steps
        return due if max_steps is None else min(due, max(max_steps, step + 1))

    def _end_epoch(self) -> FitStatus | None:
        run, state, config = self._run, self._state, self._config
        self._parts.stepper.end_epoch()
        completed = state.epoch + 1
        weighted = run.schedule.strategy is SamplingStrategy.WEIGHTED
        metrics = (
            loader_shares(run.names, run.schedule.counts(), run.schedule.weights)
            if weighted
            else {}
        )
        metrics.update(self._flush_train_metrics())
        # the epoch's last progress line, before the lines of its validation and checkpoint
        run.progress.update(run.schedule_position(), {**state.last_metrics, **metrics})
        run.progress.close()
        if (
            config.validation.frequency == ValidationFrequency.PER_EPOCH
            and completed % config.validate_every_n_epochs == 0
        ):
            self._validate_into(metrics, _EPOCH)
        self.log(metrics)
        self._logger.log_text("data_fingerprint", run.fingerprint.hexdigest, state.global_step)
        self._hooks.call("on_epoch_end", self._trainer, state.epoch, dict(state.last_metrics))
        state.epoch = completed
        state.epoch_fresh = True
        # Start the next epoch even after the last one, so a checkpoint written now resumes
        # into a full epoch when the run is continued with a larger max_epochs.
        run.schedule.start_epoch(completed)
        return self._boundary_decisions(metrics, epoch_end=True)

    def _boundary_decisions(
        self, metrics: dict[str, float], *, epoch_end: bool
    ) -> FitStatus | None:
        """Early stopping, checkpoint triggers and stop requests, agreed by every rank."""
        run, state, dist = self._run, self._state, self._dist
        early_stop = False
        # The monitored metric is logged at the same steps on every rank, reduced over ranks.
        if run.early_stopping.enabled and run.early_stopping.metric in metrics:
            early_stop = bool(dist.reduce_max(int(run.early_stopping.update(metrics))))
        request = run.preemption.agreed_request()
        should_save = run.checkpoints.should_save(
            step=state.global_step, epoch_end=epoch_end, epoch=state.epoch - epoch_end
        )
        if self._config.checkpoint.save_every_n_minutes:  # wall clocks differ across ranks
            should_save = bool(dist.reduce_max(int(should_save)))
        if early_stop:
            self.log(self._flush_train_metrics())
            state.stopped_early_under = run.plan.limits()  # saved: a rerun returns at once
        if should_save or request != StopRequest.NONE or early_stop:
            self.save_checkpoint(preempted=request == StopRequest.PREEMPT)
        if request != StopRequest.NONE:
            return _STOP_STATUS[request]
        if early_stop:
            logger.info(
                "early stopping: %s did not improve for %s",
                run.early_stopping.metric,
                counted(run.early_stopping.patience, "evaluation"),
            )
            return FitStatus.EARLY_STOPPED
        return None

    # ------------------------------------------------------------------ metrics, validation
    def _flush_train_metrics(self) -> dict[str, float]:
        """The training metrics of the steps since the last log (none when it was this step).

        Called at epoch ends and when an early stop ends the run, before the checkpoint of that
        boundary, so the checkpoint holds no pending values that a resumed run would log twice.
        The profiling means are flushed with them (unless switched off or logged at this step),
        so a run shorter than ``log_scalars_every_n_steps`` still reports its timings.
        """
        step = self._state.global_step
        metrics: dict[str, float] = {}
        if self._config.log_loss_every_n_steps is not None and step > self._run.last_train_log_step:
            metrics = self._train_metrics()
        if (
            self._config.logging.log_scalars_every_n_steps is not None
            and step != self._profile_logged_step
        ):
            metrics.update(self._pop_profile_means())
        return metrics

    def _pop_profile_means(self) -> dict[str, float]:
        """The profiler's training means since they were last logged (at boundaries only)."""
        self._profile_logged_step = self._state.global_step
        return self._run.profiler.pop_train_means()

    def _train_metrics(self) -> dict[str, float]:
        run, state, dist = self._run, self._state, self._dist
        run.guard.raise_if_bad()  # NOTE [non-finite steps]: read at logging steps
        run.last_train_log_step = state.global_step
        # summed over ranks only when there are several
        metrics = run.metrics.pop_means(dist.reduce_sum_by_slot if dist.is_distributed else None)
        now = time.perf_counter()
        samples = sum(dist.reduce_sum([float(run.metrics.pop_samples())]))
        metrics["train/samples_per_sec"] = samples / max(now - run.last_log_time, 1e-9)
        metrics["epoch"] = float(state.epoch)
        run.last_log_time = now
        for idx, lr in enumerate(self._parts.stepper.learning_rates()):
            metrics[lr_key(idx)] = lr
        if state.skipped_nonfinite or self._config.on_nonfinite_loss == "skip":
            metrics["train/skipped_nonfinite"] = float(state.skipped_nonfinite)
        return metrics

    def _validate_into(self, metrics: dict[str, float], boundary: str) -> None:
        """Validate and add the metrics; a pass cut short leaves ``boundary`` owing it."""
        found = self.validate()
        if found is None:
            self._state.pending_validation = boundary
        else:
            metrics.update(found)

    def _redo_validation(self) -> FitStatus | None:
        """The validation a stop request cut short, redone before training resumes, and the
        decisions of its boundary (NOTE [validation cut short] in validation.py)."""
        state, run = self._state, self._run
        is_epoch_end = state.pending_validation == _EPOCH
        metrics = self.validate()
        if metrics is not None:
            state.pending_validation = None
            run.last_saved_step = -1  # the checkpoint resumed from still owes it: save again
            self.log(metrics)
        return self._boundary_decisions(metrics or {}, epoch_end=is_epoch_end)

    def validate(self) -> dict[str, float] | None:
        """One validation pass (nothing without validation loaders), with its hooks; None when
        a stop request cut it short (NOTE [validation cut short] in validation.py)."""
        return validate(self._trainer, self._run, self._parts, self._config, self._validation_step)

    def log(self, metrics: dict[str, float]) -> None:
        """Log ``metrics`` at the current step and check the monitored metrics exist."""
        if metrics:
            state = self._state
            self._logger.log_scalars(metrics, state.global_step)
            state.last_metrics.update(metrics)
            self._run.monitored_check.check(metrics, state.last_metrics)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, *, preempted: bool) -> None:
        """Write a checkpoint; a collective: every rank calls it at the same boundary.

        NOTE [same decisions]: every rank records the save (step and rank 0's path), so the
        decisions that depend on it (the final save in ``finish``) are the same on every rank;
        rank 0's write error reaches every rank through the one gather that ends the save.
        """
        run = self._run
        run.guard.raise_if_bad()  # never persist a non-finite step
        payload = build_payload(self._parts, run)
        entries = set(payload)
        self._hooks.call("on_checkpoint_save", self._trainer, payload)
        note_hook_entries(payload, entries)
        outcomes = self._dist.all_ranks_call(lambda: self._write_checkpoint(payload, preempted))
        run.checkpoint_path, requeued = outcomes[0]
        if requeued:
            run.preemption.note_requeued()
        run.last_saved_step = self._state.global_step

    def _write_checkpoint(
        self, payload: dict[str, Any], preempted: bool
    ) -> tuple[Path | None, bool]:
        """Rank 0 writes (and on preemption waits for the file and requeues); other ranks only
        restart their save timer, or write their shards when the format is sharded (FSDP).
        Returns the checkpoint written (None on other ranks) and whether the job was requeued."""
        run, state = self._run, self._state
        started = time.monotonic()
        path = run.checkpoints.save(
            payload, epoch=state.epoch, step=state.global_step, metrics=state.last_metrics
        )
        if preempted:
            run.checkpoints.wait()
            elapsed = time.monotonic() - started
            if run.preemption.checkpoint_deadline_exceeded(elapsed):
                logger.warning(
                    "preemption checkpoint took %.1f s, over preemption.max_checkpoint_sec", elapsed
                )
            if self._dist.is_rank_zero:
                return path, run.preemption.requeue_if_under_slurm()
        return path, False

    # ------------------------------------------------------------------ finishing
    def finish(self, status: FitStatus) -> FitResult:
        """The final checkpoint of a completed run (unless this step has one) and the result."""
        run, state = self._run, self._state
        if status == FitStatus.COMPLETED and run.last_saved_step != state.global_step:
            self.save_checkpoint(preempted=False)
        self._dist.all_ranks_call(run.checkpoints.wait)  # an async save's error reaches all
        summary = run.profiler.summary() if state.global_step > run.start_step else ""
        if summary and self._dist.is_rank_zero:
            logger.info("%s", summary)
        return FitResult(
            status=status,
            global_step=state.global_step,
            epoch=state.epoch,
            metrics=dict(state.last_metrics),
            checkpoint_path=run.checkpoint_path,
            data_fingerprint=run.fingerprint.hexdigest,
        )


def _is_due_or_last(step: int, every_n_steps: int | None, is_last_step: bool) -> bool:
    """Whether an interval ends at ``step``, or it is the run's last step (None: never)."""
    return every_n_steps is not None and (is_last_step or step % every_n_steps == 0)
