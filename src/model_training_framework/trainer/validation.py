"""The validation pass: each validation batch once (by default), metrics per loader, aggregated.

Runs under ``torch.no_grad()`` and ``model.eval()``; the model returns to train mode afterwards.
Per-loader means are sample-weighted and reduced across ranks before aggregation.

NOTE [validation cut short]: a stop request (preemption signal, Ctrl-C) must not wait for
a validation pass to end: Slurm kills the job a fixed grace after its warning signal, and
a pass over a large set can take longer. So the pass asks, before every batch, whether
the ranks agree to stop (one small all-reduce per batch under DDP, as at every optimizer
step). With an iterable validation loader under DDP the ranks may run out of batches at
different points, so there they also agree, before each batch, whether any rank has one
left (a second small all-reduce): a rank that ran out keeps taking part in the stop checks
until every rank has, and each rank still validates all of its own batches. A pass cut
short logs nothing, calls no on_validation_end, restores the RNG states it found (its
loaders and steps drew from them) and records in the train state that the boundary still
owes its validation; the boundary then saves and stops as usual. A resumed run first
redoes that pass from the same RNG states, logs it at the same step and takes that
boundary's decisions (early stopping, checkpoint triggers) with its metrics, as an
uninterrupted run did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from model_training_framework.trainer.checks import checked_validation_outputs
from model_training_framework.trainer.data.batches import count_samples
from model_training_framework.trainer.data.devices import move_to_device
from model_training_framework.trainer.data.handover import fetch_scheduled
from model_training_framework.trainer.data.schedule import LoaderSchedule, Slot
from model_training_framework.trainer.data.user_loaders import loader_length, stop_workers
from model_training_framework.trainer.metrics.aggregation import (
    MetricAccumulator,
    aggregate_validation,
)
from model_training_framework.trainer.metrics.means import MetricSlot
from model_training_framework.trainer.metrics.running import numeric_items
from model_training_framework.trainer.run import build_schedule
from model_training_framework.trainer.runtime.preemption import StopRequest
from model_training_framework.trainer.state.rng import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    from model_training_framework.trainer.config import GenericTrainerConfig
    from model_training_framework.trainer.hooks import HookDispatcher
    from model_training_framework.trainer.metrics.profiling import NullProfiler
    from model_training_framework.trainer.optim.precision import Precision
    from model_training_framework.trainer.parts import TrainerParts
    from model_training_framework.trainer.run import Run

__all__ = ["run_validation", "validate"]

logger = logging.getLogger(__name__)


def validate(
    trainer: Any,
    run: Run,
    parts: TrainerParts,
    config: GenericTrainerConfig,
    step_fn: Callable[..., Any] | None,
) -> dict[str, float] | None:
    """One validation pass over ``run``'s validation loaders (``{}`` without any), with its
    hooks and, when profiling scalars are on, its profile.

    Returns:
        The metrics, or None when a stop request cut the pass short (see the NOTE above).
    """
    plan, hooks = run.plan, parts.hooks
    if not plan.val_loaders:
        return {}
    rng_states = capture_rng_state()
    hooks.call("on_validation_start", trainer)
    schedule = build_schedule(
        config.val_loader_config, [loader_length(v) for v in plan.val_loaders]
    )
    metrics = run_validation(
        trainer,
        plan.val_loaders,
        plan.val_names,
        schedule,
        step_fn,
        aggregation=config.validation.aggregation,
        primary_metric=config.validation.primary_metric,
        custom_fn=config.validation.resolve_aggregation_fn(),
        reduce_sum=parts.dist.reduce_sum_by_slot,
        precision=parts.precision,
        profiler=run.profiler,
        hooks=hooks,
        should_stop=_stop_check(run),
        any_rank_has_batch=_batches_left_check(parts, plan.val_loaders),
    )
    profile = run.profiler.pop_val_means()
    if metrics is None:
        restore_rng_state(rng_states)
        logger.warning("validation cut short by the stop request; a resumed run redoes it")
        return None
    if config.logging.log_scalars_every_n_steps is not None:  # None: profiling metrics off
        metrics.update(profile)
    hooks.call("on_validation_end", trainer, metrics)
    return metrics


def _stop_check(run: Run) -> Callable[[], bool]:
    """Whether the ranks agree to stop, asked before each validation batch."""
    preemption, no_request = run.preemption, StopRequest.NONE
    return lambda: preemption.agreed_request() is not no_request


def _batches_left_check(parts: TrainerParts, val_loaders: Sequence[Any]) -> Callable[[bool], bool]:
    """Whether any rank has a validation batch left, given whether this one has: agreed under
    DDP when a loader has no length (its batch counts may differ across ranks), else local."""
    dist = parts.dist
    if dist.is_distributed and None in map(loader_length, val_loaders):
        return lambda has_batch: bool(dist.reduce_max(int(has_batch)))
    return lambda has_batch: has_batch


def run_validation(
    trainer: Any,
    loaders: Sequence[Any],
    names: Sequence[str],
    schedule: LoaderSchedule,
    step_fn: Callable[..., Any],
    *,
    aggregation: Any,
    primary_metric: str,
    custom_fn: Callable[..., Any] | None,
    reduce_sum: Callable[[dict[MetricSlot, float]], dict[MetricSlot, float]],
    precision: Precision,
    profiler: NullProfiler,
    hooks: HookDispatcher,
    should_stop: Callable[[], bool] = lambda: False,
    any_rank_has_batch: Callable[[bool], bool] = lambda has_batch: has_batch,
) -> dict[str, float] | None:
    """Run one validation pass and return ``val/dl_<name>/<k>`` and ``val/<k>`` metrics.

    ``trainer`` is what ``step_fn`` and the ``on_validation_batch_end`` hooks receive; its
    public ``model`` and ``device`` are used. ``precision`` gives the forward context,
    ``profiler`` times each batch. Before every batch, ``any_rank_has_batch(has_batch)`` says
    whether the pass goes on (on every rank while any has a batch left: a rank without one
    waits), then ``should_stop`` is asked (both collectives under DDP, called the same number
    of times on every rank); when it says so the pass ends there and None is returned.
    """
    model = trainer.model
    was_training = model.training
    model.eval()
    accumulator = MetricAccumulator()
    iterators: dict[int, tuple[int, Any]] = {}

    def next_batch(slot: Slot) -> Any:
        current = iterators.get(slot.loader_idx)
        if current is None or current[0] != slot.pass_idx:
            current = (slot.pass_idx, iter(loaders[slot.loader_idx]))
            iterators[slot.loader_idx] = current
        return next(current[1])

    schedule.start_epoch(0)
    try:
        with torch.no_grad():
            while True:
                t0 = time.perf_counter()
                fetched = _next_scheduled(schedule, next_batch)
                fetch_s = time.perf_counter() - t0
                if not any_rank_has_batch(fetched is not None):
                    break
                if should_stop():
                    return None
                if fetched is None:  # this rank ran out; another has batches left
                    continue
                slot, batch = fetched
                idx = slot.loader_idx
                t1 = time.perf_counter()
                batch = move_to_device(batch, trainer.device)
                t2 = time.perf_counter()
                with precision.forward_context():
                    outputs = step_fn(trainer, batch, slot.batch_idx, idx, names[idx])
                profiler.sync()
                t3 = time.perf_counter()
                profiler.record_val(idx, fetch_s + (t2 - t1), t3 - t2)
                outputs = checked_validation_outputs(outputs)
                metrics = {k: float(v) for k, v in numeric_items(outputs)}
                accumulator.add(names[idx], metrics, count_samples(batch, loaders[idx].batch_size))
                hooks.call(
                    "on_validation_batch_end",
                    trainer,
                    batch,
                    slot.batch_idx,
                    idx,
                    names[idx],
                    outputs,
                )
    except BaseException:
        # NOTE [worker signals]: the traceback keeps these iterators, and their workers, alive
        for loader_idx, (_, iterator) in iterators.items():
            stop_workers(iterator, loaders[loader_idx])
        raise
    finally:
        model.train(was_training)
    accumulator.from_slots(reduce_sum(accumulator.to_slots()))
    per_loader = accumulator.means()
    results = {
        f"val/dl_{name}/{key}": value
        for name, loader_metrics in per_loader.items()
        for key, value in loader_metrics.items()
    }
    overall = aggregate_validation(
        per_loader,
        accumulator.samples(),
        aggregation,
        primary_metric=primary_metric,
        custom_fn=custom_fn,
    )
    results.update({f"val/{key}": value for key, value in overall.items()})
    return results


def _next_scheduled(
    schedule: LoaderSchedule, fetch: Callable[[Slot], Any]
) -> tuple[Slot, Any] | None:
    """The pass's next slot and its batch (past loaders that ran dry), or None at its end."""
    while (slot := schedule.next_slot()) is not None:
        fetched = fetch_scheduled(schedule, slot, fetch)
        if fetched is not None:
            return fetched
    return None
