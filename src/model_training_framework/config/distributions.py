"""PURE: seeded value distributions for parameter sweeps (uniform, loguniform, normal, choice).

A :class:`Distribution` validates its parameters at construction and draws values with a
``random.Random`` the caller seeds, so a grid's samples are the same on every run.
:data:`DISTRIBUTIONS` maps the names used in grid files to the classes.

Example:
    >>> import random
    >>> values = UniformDistribution(0.0, 1.0).sample(random.Random(0), 3)
    >>> len(values), all(0.0 <= v < 1.0 for v in values)
    (3, True)
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model_training_framework.errors import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "ChoiceDistribution",
    "Distribution",
    "LogUniformDistribution",
    "NormalDistribution",
    "UniformDistribution",
    "build_distribution",
]


class Distribution:
    """A seeded sampler of values; subclasses hold validated parameters and a name."""

    name: str = ""

    def sample(self, rng: random.Random, num_samples: int) -> list[Any]:
        """Draw ``num_samples`` values with ``rng``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Return the parameters as plain values (for saving the grid)."""
        raise NotImplementedError


def _finite(name: str, label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} distribution: {label} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class UniformDistribution(Distribution):
    """Uniform floats in ``[low, high)``."""

    low: float
    high: float
    name = "uniform"

    def __post_init__(self) -> None:
        low, high = _finite(self.name, "low", self.low), _finite(self.name, "high", self.high)
        if not low < high:
            raise ConfigError(f"uniform distribution needs low < high, got low={low}, high={high}")

    def sample(self, rng: random.Random, num_samples: int) -> list[Any]:
        return [rng.uniform(self.low, self.high) for _ in range(num_samples)]

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniformDistribution(Distribution):
    """Floats whose logarithm is uniform in ``[log(low), log(high))``; ``0 < low < high``."""

    low: float
    high: float
    name = "loguniform"

    def __post_init__(self) -> None:
        low, high = _finite(self.name, "low", self.low), _finite(self.name, "high", self.high)
        if not 0 < low < high:
            raise ConfigError(
                f"loguniform distribution needs 0 < low < high, got low={low}, high={high}"
            )

    def sample(self, rng: random.Random, num_samples: int) -> list[Any]:
        log_low, log_high = math.log(self.low), math.log(self.high)
        return [math.exp(rng.uniform(log_low, log_high)) for _ in range(num_samples)]

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class NormalDistribution(Distribution):
    """Gaussian floats with ``mean`` and standard deviation ``std`` (> 0)."""

    mean: float
    std: float
    name = "normal"

    def __post_init__(self) -> None:
        _finite(self.name, "mean", self.mean)
        if _finite(self.name, "std", self.std) <= 0:
            raise ConfigError(f"normal distribution needs std > 0, got std={self.std}")

    def sample(self, rng: random.Random, num_samples: int) -> list[Any]:
        return [rng.gauss(self.mean, self.std) for _ in range(num_samples)]

    def params(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class ChoiceDistribution(Distribution):
    """Draws values from ``choices``, optionally with relative ``weights`` (> 0).

    Draws are with replacement (each draw is independent), so ``n_samples`` may exceed the
    number of choices and a value may be drawn more than once.
    """

    choices: tuple[Any, ...]
    weights: tuple[float, ...] | None = None
    name = "choice"

    def __post_init__(self) -> None:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            raise ConfigError(f"choice distribution needs a list of choices, got {self.choices!r}")
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ConfigError("choice distribution needs a non-empty list of choices")
        if self.weights is None:
            return
        weights = tuple(_finite(self.name, "each weight", w) for w in self.weights)
        if len(weights) != len(self.choices) or any(w <= 0 for w in weights):
            raise ConfigError(
                f"choice distribution needs one positive weight per choice; got "
                f"{len(self.choices)} choices and weights {list(self.weights)}"
            )
        object.__setattr__(self, "weights", weights)

    def sample(self, rng: random.Random, num_samples: int) -> list[Any]:
        picked = rng.choices(self.choices, weights=self.weights, k=num_samples)
        return [copy.deepcopy(value) for value in picked]

    def params(self) -> dict[str, Any]:
        weights = None if self.weights is None else list(self.weights)
        return {"choices": list(self.choices), "weights": weights}


DISTRIBUTIONS: dict[str, Callable[..., Distribution]] = {
    "uniform": UniformDistribution,
    "loguniform": LogUniformDistribution,
    "normal": NormalDistribution,
    "choice": ChoiceDistribution,
}


def build_distribution(distribution: Distribution | str, params: Mapping[str, Any]) -> Distribution:
    """Return ``distribution`` if already built, else build it by name from ``params``.

    Args:
        distribution: a :class:`Distribution`, or a name from :data:`DISTRIBUTIONS`.
        params: the distribution's parameters (must be empty for a built one).

    Returns:
        The distribution.

    Raises:
        ConfigError: unknown name, wrong parameters, or parameters given with a built one.
    """
    if isinstance(distribution, Distribution):
        if params:
            raise ConfigError(
                f"distribution {distribution!r} is already built; do not also pass {sorted(params)}"
            )
        return distribution
    factory = DISTRIBUTIONS.get(str(distribution).lower())
    if factory is None:
        raise ConfigError(
            f"distribution {distribution!r} is unknown; use one of {sorted(DISTRIBUTIONS)}"
        )
    try:
        return factory(**params)
    except TypeError as err:
        raise ConfigError(
            f"{distribution} distribution got parameters {sorted(params)}: {err}; "
            "uniform/loguniform take low, high; normal takes mean, std; "
            "choice takes choices and optional weights"
        ) from err
