"""Metric keys and the running means of training-step outputs between two log steps.

Step outputs are kept as they come (0-d tensors stay on their device) and reduced only at a log
step, so the hot path never forces a device synchronisation. The means themselves are taken by
:class:`~model_training_framework.trainer.metrics.means.WeightedMeans`, as for validation.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.metrics.means import MetricSlot, WeightedMeans

__all__ = [
    "NullTrainMetrics",
    "TrainMetrics",
    "loader_shares",
    "lr_key",
    "numeric_items",
    "scalar_value",
    "train_key",
]


def train_key(name: str | None, key: str) -> str:
    """``train/dl_<name>/<key>`` for a loader, ``train/<key>`` overall."""
    return f"train/{key}" if name is None else f"train/dl_{name}/{key}"


def lr_key(optimizer_idx: int) -> str:
    """Learning-rate key of optimizer ``optimizer_idx``."""
    return f"train/lr/opt_{optimizer_idx}"


def loader_shares(
    names: Sequence[str], counts: Sequence[int], weights: Sequence[float] | None
) -> dict[str, float]:
    """WEIGHTED sampling: each loader's actual share of this epoch's batches and its target."""
    total, weight_sum = sum(counts), sum(weights or [])
    if not total or not weight_sum:
        return {}
    shares = {}
    for name, count, weight in zip(names, counts, weights or [], strict=True):
        shares[f"train/loader_share/dl_{name}"] = count / total
        shares[f"train/loader_share_target/dl_{name}"] = weight / weight_sum
    return shares


def numeric_items(outputs: Mapping[str, Any], loss_value: Any = None) -> list[tuple[str, Any]]:
    """The metric entries of a step's output dict: numbers and 0-d tensors (others ignored).

    Args:
        outputs: what the step function returned.
        loss_value: stands in for the ``"loss"`` entry (training steps pass the loss they
            already detached); the same value, so the same mean.

    Returns:
        ``(key, value)`` pairs; values are floats or detached one-element tensors.
    """
    items = []
    for key, value in outputs.items():
        if isinstance(value, torch.Tensor):
            if loss_value is not None and key == "loss":
                items.append((key, loss_value))
            elif value.numel() == 1:
                items.append((key, value.detach()))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            items.append((key, float(value)))
    return items


def scalar_value(key: str, value: Any) -> float:
    """``value`` of the metric ``key`` as a Python float (a one-element tensor is read).

    Raises:
        TypeError: ``value`` is no number (a string, a tensor of several elements, ...).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"metric '{key}' must be a number or a one-element tensor/array, got "
            f"{type(value).__name__}"
        ) from err


_FLOAT_TYPE = frozenset({float})


def _as_floats(values: Sequence[Any]) -> list[float]:
    """Values as exact float64 numbers; tensors are read with one transfer per device.

    Floats (pending values restored from a checkpoint) and tensors give the same numbers, so a
    resumed run logs the same means as an uninterrupted one.
    """
    if _FLOAT_TYPE.issuperset(map(type, values)):  # read on the CPU as they came
        return list(values)
    if (
        values
        and all(type(v) is not float and v.dim() == 0 for v in values)
        and len({v.device for v in values}) == 1
    ):  # the usual case: one stack, one read
        return torch.stack(list(values)).to(torch.float64).tolist()
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for value in values:
        if not isinstance(value, float):
            by_device.setdefault(value.device, []).append(value.reshape(()))
    if not by_device:
        return list(values)
    as_floats = {
        device: iter(torch.stack(tensors).to(torch.float64).tolist())
        for device, tensors in by_device.items()
    }
    return [v if isinstance(v, float) else next(as_floats[v.device]) for v in values]


class TrainMetrics:
    """Sample-weighted running means of step metrics, per loader and overall, since the last
    ``pop_means`` (each micro-step's value counts as many times as its batch has samples).

    Args:
        names: loader names, by loader index.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        # per loader: metric key -> ([values], [samples of the batch each value came from])
        self._values: list[dict[str, tuple[list[Any], list[int]]]] = [{} for _ in names]
        self._samples = 0
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}

    def add(self, loader_idx: int, items: Sequence[tuple[str, Any]], num_samples: int) -> None:
        """Record one micro-step's metric items for loader ``loader_idx``."""
        per_loader = self._values[loader_idx]
        for key, value in items:
            bucket = per_loader.get(key)
            if bucket is None:
                per_loader[key] = ([value], [num_samples])
            else:
                bucket[0].append(value)
                bucket[1].append(num_samples)
        self._samples += num_samples

    def add_outputs(
        self, loader_idx: int, outputs: Mapping[str, Any], loss_value: Any, num_samples: int
    ) -> None:
        """Record a training step's output dict, ``loss_value`` standing in for its loss (see
        :func:`numeric_items`); the step's usual ``{"loss": ...}`` takes the short way."""
        if len(outputs) == 1 and "loss" in outputs:  # the loss is a tensor (checked_loss)
            per_loader = self._values[loader_idx]
            bucket = per_loader.get("loss")
            if bucket is None:  # a loader's first batch since the last log step
                per_loader["loss"] = ([loss_value], [num_samples])
            else:
                bucket[0].append(loss_value)
                bucket[1].append(num_samples)
            self._samples += num_samples
            return
        self.add(loader_idx, numeric_items(outputs, loss_value), num_samples)

    def mark(self) -> list[dict[str, int]]:
        """Where each loader's values end now, for :meth:`drop_since`."""
        return [{key: len(bucket[0]) for key, bucket in d.items()} for d in self._values]

    def drop_since(self, mark: Sequence[Mapping[str, int]]) -> None:
        """Forget the values recorded after :meth:`mark` returned ``mark`` (a window that
        ``on_nonfinite_loss="skip"`` dropped stays out of the means). Their samples still
        count for throughput: the work was done."""
        for per_loader, lengths in zip(self._values, mark, strict=True):
            for key in list(per_loader):
                kept = lengths.get(key, 0)
                if kept:
                    values, weights = per_loader[key]
                    del values[kept:], weights[kept:]
                else:
                    del per_loader[key]

    def pop_samples(self) -> int:
        """Samples seen since the last call."""
        samples, self._samples = self._samples, 0
        return samples

    def pop_means(
        self, reduce: Callable[[dict[MetricSlot, float]], dict[MetricSlot, float]] | None = None
    ) -> dict[str, float]:
        """Means since the last call (``reduce`` sums each rank's weighted sums and samples,
        keyed by slot, across ranks: see NOTE [metric slots])."""
        sums: WeightedMeans[str] = WeightedMeans()
        add, key_pairs, fsum = sums.add, self._keys, math.fsum
        for name, per_loader in zip(self._names, self._values, strict=True):
            if not per_loader:  # no batch of this loader since the last call
                continue
            for key, (values, weights) in per_loader.items():
                if len(values) == 1 and type(values[0]) is float:  # many loaders: the usual case
                    total, samples = fsum((values[0] * weights[0],)), weights[0]
                else:
                    total = fsum(map(operator.mul, _as_floats(values), weights))
                    samples = sum(weights)
                keys = key_pairs.get((name, key))
                if keys is None:  # made once per loader and key, not at every log step
                    keys = key_pairs[name, key] = (train_key(name, key), train_key(None, key))
                add(keys[0], total, samples)
                add(keys[1], total, samples)
            per_loader.clear()
        if reduce is None:
            return sums.means()
        return _means_of_slots(reduce(self._slots(sums)))

    def _slots(self, sums: WeightedMeans[str]) -> dict[MetricSlot, float]:
        """``sums`` keyed by slot: the loader of a ``train/dl_<name>/`` key, "" overall."""
        loader_of = {keys[0]: name for (name, _), keys in self._keys.items()}
        slots: dict[MetricSlot, float] = {}
        for key, total, samples in sums.items():
            loader = loader_of.get(key, "")
            slots[loader, key, 0], slots[loader, key, 1] = total, samples
        return slots

    def state_dict(self) -> dict[str, Any]:
        """Pending values as plain floats (so a resumed run logs the same means)."""
        return {
            "values": [
                {k: [_as_floats(vs), list(ws)] for k, (vs, ws) in d.items()} for d in self._values
            ],
            "samples": self._samples,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            values, samples = state["values"], state["samples"]
        except KeyError as err:
            raise CheckpointError(f"checkpoint metrics state lacks {err}") from err
        if len(values) != len(self._names):
            raise CheckpointError(
                f"checkpoint has metrics for {len(values)} loaders, this run has {len(self._names)}"
            )
        self._values = [{k: (list(vs), list(ws)) for k, (vs, ws) in d.items()} for d in values]
        self._samples = int(samples)


class NullTrainMetrics(TrainMetrics):
    """Step metrics switched off (``log_loss_every_n_steps=None``): records nothing.

    Its state has the same shape as :class:`TrainMetrics` (empty), so checkpoints load either
    way when the setting changes between runs.
    """

    def add(self, loader_idx: int, items: Sequence[tuple[str, Any]], num_samples: int) -> None:
        """Ignore the step's metrics."""

    def add_outputs(
        self, loader_idx: int, outputs: Mapping[str, Any], loss_value: Any, num_samples: int
    ) -> None:
        """Ignore the step's outputs."""


def _means_of_slots(slots: Mapping[MetricSlot, float]) -> dict[str, float]:
    """Metric key -> mean, from slots summed across ranks (a key with no samples is left out)."""
    sums: WeightedMeans[str] = WeightedMeans()
    for (loader, key, part), value in slots.items():
        if part == 0:
            sums.add(key, value, slots[loader, key, 1])
    return sums.means()
