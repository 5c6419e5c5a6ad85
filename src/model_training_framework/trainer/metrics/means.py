"""PURE: sample-weighted running means, the one implementation behind training and validation
metrics.

Each key holds a weighted sum and its weight (usually a number of samples); its mean is
``sum / weight``. Under DDP the sums and weights travel keyed by slot (NOTE [metric slots]), so
that every rank's sums are added up before the means are taken: the mean over all ranks'
samples, not a mean of per-rank means.

Example:
    >>> means = WeightedMeans()
    >>> means.add("loss", 2.0 * 3, 3)  # a batch of 3 samples with mean loss 2.0
    >>> means.add("loss", 6.0 * 1, 1)
    >>> means.means()
    {'loss': 3.0}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

__all__ = ["MetricSlot", "WeightedMeans", "expand_to", "loaders_per_rank", "union_of_keys"]

K = TypeVar("K", bound=Hashable)

# NOTE [metric slots]: under DDP every rank's sums travel as one float per slot, named
# (loader, metric, part): ``loader`` is the loader the value belongs to ("" for a value over
# all loaders), ``part`` says which float of the metric it is (0 weighted sum, 1 weight, 2 a
# loader's sample count, with metric ""). Ranks that hold the same loaders but different
# metrics (a metric returned only for some batches) are summed over the union of their slots;
# ranks that hold different loaders ran different schedules, which is an error.
MetricSlot = tuple[str, str, int]


def union_of_keys(every_rank: Iterable[Iterable[K]]) -> list[K]:
    """Every key that any rank holds, once, sorted by ``repr`` (the same order on every rank).

    Example:
        >>> union_of_keys([[("a", "loss", 0)], [("a", "recall", 0), ("a", "loss", 0)]])
        [('a', 'loss', 0), ('a', 'recall', 0)]
    """
    return sorted({key for keys in every_rank for key in keys}, key=repr)


def expand_to(values: Mapping[K, float], keys: Sequence[K]) -> list[float]:
    """``values`` in the order of ``keys``, 0.0 for a key this rank lacks (so a metric's
    weighted sum and weight gain nothing from a rank that never returned it)."""
    return [values.get(key, 0.0) for key in keys]


def loaders_per_rank(every_rank: Iterable[Iterable[MetricSlot]]) -> list[list[str]]:
    """The loaders named by each rank's slots (sorted; "" for all loaders is left out)."""
    return [sorted({slot[0] for slot in slots if slot[0]}) for slots in every_rank]


class WeightedMeans(Generic[K]):
    """Per key: a weighted sum and its weight, added to until :meth:`clear`."""

    def __init__(self) -> None:
        # key -> [weighted sum, weight]; insertion order is the order of means()
        self._sums: dict[K, list[float]] = {}

    def add(self, key: K, weighted_sum: float, weight: float) -> None:
        """Add ``weighted_sum`` (values times their weights) and ``weight`` to ``key``."""
        entry = self._sums.get(key)
        if entry is None:
            self._sums[key] = [0.0 + weighted_sum, 0.0 + weight]
        else:
            entry[0] += weighted_sum
            entry[1] += weight

    def means(self) -> dict[K, float]:
        """Key -> weighted mean, for every key whose weight is not zero (in first-added order)."""
        return {key: total / weight for key, (total, weight) in self._sums.items() if weight}

    def items(self) -> list[tuple[K, float, float]]:
        """``(key, weighted sum, weight)`` of every key, in first-added order."""
        return [(key, total, weight) for key, (total, weight) in self._sums.items()]

    def clear(self) -> None:
        """Forget every key."""
        self._sums.clear()

    def __len__(self) -> int:
        return len(self._sums)
