"""PURE: combine validation metrics across loaders, and accumulate them per loader.

Two pieces, both free of torch so that they can be tested (and reasoned about) as arithmetic:

- :class:`MetricAccumulator` collects, for each validation loader, the sample-weighted sum of
  every metric over the batches of a validation pass, and turns them into per-loader means
  (with :class:`~.means.WeightedMeans`, the running means that training metrics use too).
  Its counts and sums travel keyed by slot (NOTE [metric slots] in :mod:`~.means`) so that
  the trainer can sum them across ranks.
- :func:`aggregate_validation` combines the per-loader means into the cross-loader values that
  the trainer logs as ``val/<metric>`` (it logs the per-loader means as
  ``val/dl_<name>/<metric>`` itself). The rule is chosen by ``validation.aggregation``.

The aggregation rule is passed as the value of the ``ValAggregation`` enum (defined in
``trainer/config/validation.py``) or as the enum member itself; this module compares values
only, so it does not need to import the config.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from enum import Enum

from model_training_framework.trainer.metrics.means import MetricSlot, WeightedMeans

__all__ = [
    "AGGREGATIONS",
    "CUSTOM",
    "MACRO_AVG_EQUAL_LOADERS",
    "MICRO_AVG_WEIGHTED_BY_SAMPLES",
    "PRIMARY_METRIC_PER_LOADER",
    "MetricAccumulator",
    "aggregate_validation",
]

MICRO_AVG_WEIGHTED_BY_SAMPLES = "micro_avg_weighted_by_samples"
MACRO_AVG_EQUAL_LOADERS = "macro_avg_equal_loaders"
PRIMARY_METRIC_PER_LOADER = "primary_metric_per_loader"
CUSTOM = "custom"

PerLoaderMetrics = Mapping[str, Mapping[str, float]]
CustomAggregation = Callable[[dict[str, dict[str, float]]], Mapping[str, float]]


def aggregate_validation(
    per_loader: PerLoaderMetrics,
    samples_per_loader: Mapping[str, int],
    aggregation: str | Enum,
    *,
    primary_metric: str = "loss",
    custom_fn: CustomAggregation | None = None,
) -> dict[str, float]:
    """Combine per-loader validation means into cross-loader metrics.

    Rules (``aggregation`` value):

    - ``micro_avg_weighted_by_samples``: for each metric, the mean over all validation samples
      of the loaders that report it: ``sum(mean_l * n_l) / sum(n_l)``.
    - ``macro_avg_equal_loaders``: for each metric, the plain mean of the per-loader means of
      the loaders that report it (every loader counts the same, whatever its size).
    - ``primary_metric_per_loader``: only ``primary_metric`` is combined (plain mean over the
      loaders that report it); every other metric is kept per loader only, so the result has
      the single key ``primary_metric``. Use it when loaders measure different things and only
      the primary metric is comparable across them.
    - ``custom``: ``custom_fn(per_loader)`` (a copy of ``per_loader`` as plain dicts) returns
      the cross-loader metrics.

    Args:
        per_loader: loader name -> metric name -> that loader's mean over its samples.
        samples_per_loader: loader name -> number of samples behind its means. Every loader in
            ``per_loader`` needs an entry (only the micro average reads the counts).
        aggregation: one of the values above, or a str-valued enum member with such a value.
        primary_metric: metric combined by ``primary_metric_per_loader``.
        custom_fn: the function used by ``custom``.

    Returns:
        Metric name -> value, without the ``val/`` prefix. Empty when ``per_loader`` is empty.

    Raises:
        ValueError: unknown ``aggregation``; a loader without a positive sample count for the
            micro average; no loader reporting ``primary_metric``; ``custom`` without
            ``custom_fn``.
        TypeError: ``custom_fn`` returned something other than a mapping of str to numbers.

    Example:
        >>> aggregate_validation({"a": {"loss": 1.0}, "b": {"loss": 4.0}}, {"a": 3, "b": 1},
        ...                      "micro_avg_weighted_by_samples")
        {'loss': 1.75}
    """
    rule = _rule_for(aggregation)
    if not per_loader:
        return {}
    return rule(per_loader, samples_per_loader, primary_metric, custom_fn)


def _rule_for(aggregation: str | Enum) -> _Rule:
    value = aggregation.value if isinstance(aggregation, Enum) else aggregation
    rule = _RULES.get(str(value).lower())
    if rule is None:
        raise ValueError(
            f"validation.aggregation must be one of {sorted(_RULES)}; got {aggregation!r}"
        )
    return rule


def _metric_names(per_loader: PerLoaderMetrics) -> list[str]:
    """Every metric name reported by at least one loader, in first-seen order."""
    names: dict[str, None] = {}
    for metrics in per_loader.values():
        names.update(dict.fromkeys(metrics))
    return list(names)


def _micro(
    per_loader: PerLoaderMetrics,
    samples_per_loader: Mapping[str, int],
    primary_metric: str,
    custom_fn: CustomAggregation | None,
) -> dict[str, float]:
    counts = {name: _sample_count(name, samples_per_loader) for name in per_loader}
    result: dict[str, float] = {}
    for key in _metric_names(per_loader):
        reporting = [name for name, metrics in per_loader.items() if key in metrics]
        weighted_sum = math.fsum(per_loader[name][key] * counts[name] for name in reporting)
        result[key] = weighted_sum / sum(counts[name] for name in reporting)
    return result


def _sample_count(loader_name: str, samples_per_loader: Mapping[str, int]) -> int:
    count = samples_per_loader.get(loader_name)
    if count is None or count <= 0:
        raise ValueError(
            f"micro_avg_weighted_by_samples needs a positive sample count for validation "
            f"loader {loader_name!r}; got {count!r} (counts given: {dict(samples_per_loader)})"
        )
    return count


def _macro(
    per_loader: PerLoaderMetrics,
    samples_per_loader: Mapping[str, int],
    primary_metric: str,
    custom_fn: CustomAggregation | None,
) -> dict[str, float]:
    result: dict[str, float] = {}
    for key in _metric_names(per_loader):
        values = [metrics[key] for metrics in per_loader.values() if key in metrics]
        result[key] = math.fsum(values) / len(values)
    return result


def _primary(
    per_loader: PerLoaderMetrics,
    samples_per_loader: Mapping[str, int],
    primary_metric: str,
    custom_fn: CustomAggregation | None,
) -> dict[str, float]:
    values = [
        metrics[primary_metric] for metrics in per_loader.values() if primary_metric in metrics
    ]
    if not values:
        raise ValueError(
            f"primary_metric_per_loader: no validation loader reports the primary metric "
            f"{primary_metric!r} (reported: {_metric_names(per_loader)}); set "
            f"validation.primary_metric to one of them or return it from the validation step"
        )
    return {primary_metric: math.fsum(values) / len(values)}


def _custom(
    per_loader: PerLoaderMetrics,
    samples_per_loader: Mapping[str, int],
    primary_metric: str,
    custom_fn: CustomAggregation | None,
) -> dict[str, float]:
    if custom_fn is None:
        raise ValueError(
            "validation.aggregation is 'custom' but no aggregation function was given; set "
            "validation.aggregation_fn to a callable (or its dotted path) taking "
            "{loader: {metric: value}} and returning {metric: value}"
        )
    result = custom_fn({name: dict(metrics) for name, metrics in per_loader.items()})
    return _checked_custom_result(result, custom_fn)


def _checked_custom_result(result: object, custom_fn: Callable[..., object]) -> dict[str, float]:
    fn_name = getattr(custom_fn, "__qualname__", repr(custom_fn))
    if not isinstance(result, Mapping):
        raise TypeError(
            f"validation.aggregation_fn {fn_name} must return a mapping of metric name to "
            f"number; got {type(result).__name__}"
        )
    checked: dict[str, float] = {}
    for key, value in result.items():
        if not isinstance(key, str):
            raise TypeError(
                f"validation.aggregation_fn {fn_name} returned a non-string key {key!r} "
                f"({type(key).__name__}); metric names must be str"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"validation.aggregation_fn {fn_name} returned {key!r}: {value!r} "
                f"({type(value).__name__}); values must be real numbers (use .item() on a "
                f"0-d tensor)"
            )
        checked[key] = float(value)
    return checked


_Rule = Callable[
    [PerLoaderMetrics, Mapping[str, int], str, "CustomAggregation | None"], dict[str, float]
]

_RULES: dict[str, _Rule] = {
    MICRO_AVG_WEIGHTED_BY_SAMPLES: _micro,
    MACRO_AVG_EQUAL_LOADERS: _macro,
    PRIMARY_METRIC_PER_LOADER: _primary,
    CUSTOM: _custom,
}

AGGREGATIONS: tuple[str, ...] = tuple(_RULES)


class MetricAccumulator:
    """Sample-weighted running means of metrics, per validation loader.

    Each :meth:`add` contributes ``value * num_samples`` to the loader's sum of that metric and
    ``num_samples`` to its weight (a :class:`~.means.WeightedMeans` keyed by (loader, metric));
    a metric reported by only some batches is averaged over the samples of those batches.

    Cross-rank reduction: :meth:`to_slots` gives the sample counts and sums keyed by slot
    (NOTE [metric slots] in :mod:`~.means`); the trainer sums them over ranks, over the union
    of the ranks' slots (a metric one rank never returned is averaged over the batches of the
    ranks that did), and writes them back with :meth:`from_slots`.

    Example:
        >>> acc = MetricAccumulator()
        >>> acc.add("a", {"loss": 1.0}, num_samples=2)
        >>> acc.add("a", {"loss": 4.0}, num_samples=1)
        >>> acc.means(), acc.samples()
        ({'a': {'loss': 2.0}}, {'a': 3})
    """

    def __init__(self) -> None:
        self._samples: dict[str, int] = {}
        self._sums: WeightedMeans[tuple[str, str]] = WeightedMeans()

    def add(self, loader_name: str, metrics: Mapping[str, float], num_samples: int) -> None:
        """Add one batch's metrics (batch means) for ``loader_name``.

        Args:
            loader_name: the validation loader's configured name.
            metrics: metric name -> mean over the batch (a Python number).
            num_samples: samples in the batch; its weight in the means.

        Raises:
            ValueError: ``num_samples`` is not a positive integer.
        """
        if num_samples <= 0:
            raise ValueError(
                f"num_samples for validation loader {loader_name!r} must be a positive "
                f"integer; got {num_samples!r}"
            )
        self._samples[loader_name] = self._samples.get(loader_name, 0) + num_samples
        for key, value in metrics.items():
            self._sums.add((loader_name, key), float(value) * num_samples, num_samples)

    def means(self) -> dict[str, dict[str, float]]:
        """Loader name -> metric name -> sample-weighted mean."""
        nested: dict[str, dict[str, float]] = {}
        for (loader, key), mean in self._sums.means().items():
            nested.setdefault(loader, {})[key] = mean
        return nested

    def samples(self) -> dict[str, int]:
        """Loader name -> number of samples added."""
        return dict(self._samples)

    def reset(self) -> None:
        """Forget everything (start of a new validation pass)."""
        self._samples.clear()
        self._sums.clear()

    def to_slots(self) -> dict[MetricSlot, float]:
        """The sample counts and sums keyed by slot (NOTE [metric slots]): ``(loader, "", 2)``
        for a loader's sample count, ``(loader, metric, 0)`` and ``(.., 1)`` for a metric's
        weighted sum and weight."""
        slots: dict[MetricSlot, float] = {
            (loader, "", 2): float(count) for loader, count in self._samples.items()
        }
        for (loader, key), total, weight in self._sums.items():
            slots[loader, key, 0], slots[loader, key, 1] = total, weight
        return slots

    def from_slots(self, slots: Mapping[MetricSlot, float]) -> None:
        """Replace the counts and sums with ``slots`` (e.g. every rank's :meth:`to_slots`,
        summed over the union of their slots)."""
        self.reset()
        for (loader, key, part), value in slots.items():
            if part == 2:
                self._samples[loader] = round(value)
            elif part == 0:
                self._sums.add((loader, key), value, slots[loader, key, 1])
