"""The validation pass: each validation batch once (by default), metrics per loader, aggregated.

Runs under ``torch.no_grad()`` and ``model.eval()``; the model returns to train mode afterwards.
Per-loader means are sample-weighted and reduced across ranks before aggregation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from model_training_framework.trainer.checks import checked_validation_outputs
from model_training_framework.trainer.data.batches import count_samples
from model_training_framework.trainer.data.devices import move_to_device
from model_training_framework.trainer.data.handover import fetch_scheduled
from model_training_framework.trainer.data.schedule import LoaderSchedule, Slot
from model_training_framework.trainer.metrics.aggregation import (
    MetricAccumulator,
    aggregate_validation,
)
from model_training_framework.trainer.metrics.running import numeric_items

if TYPE_CHECKING:
    from model_training_framework.trainer.hooks import HookDispatcher
    from model_training_framework.trainer.metrics.profiling import NullProfiler
    from model_training_framework.trainer.optim.precision import Precision

__all__ = ["run_validation"]


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
    reduce_sum: Callable[[list[float]], list[float]],
    precision: Precision,
    profiler: NullProfiler,
    hooks: HookDispatcher,
) -> dict[str, float]:
    """Run one validation pass and return ``val/dl_<name>/<k>`` and ``val/<k>`` metrics.

    ``trainer`` is what ``step_fn`` and the ``on_validation_batch_end`` hooks receive; its
    public ``model`` and ``device`` are used. ``precision`` gives the forward context,
    ``profiler`` times each batch.
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
            while (slot := schedule.next_slot()) is not None:
                t0 = time.perf_counter()
                fetched = fetch_scheduled(schedule, slot, next_batch)
                if fetched is None:
                    continue
                slot, batch = fetched
                idx = slot.loader_idx
                batch = move_to_device(batch, trainer.device)
                t1 = time.perf_counter()
                with precision.forward_context():
                    outputs = step_fn(trainer, batch, slot.batch_idx, idx, names[idx])
                profiler.sync()
                t2 = time.perf_counter()
                profiler.record_val(idx, t1 - t0, t2 - t1)
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
    finally:
        model.train(was_training)
    accumulator.from_state(reduce_sum(accumulator.to_state()))
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
