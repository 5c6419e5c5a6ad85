"""PURE: what a loader schedule is given, checked: the strategy and epoch length enums, the
checks of its arguments (each error names the fix), and each loader's quota per epoch length
policy. :mod:`.schedule` re-exports the enums.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TypeVar

from model_training_framework.config.enums import AnyCaseEnum
from model_training_framework.errors import SchedulingError

__all__ = [
    "POLICY_QUOTAS",
    "EpochLengthPolicy",
    "SamplingStrategy",
    "check_int",
    "check_lengths",
    "check_names",
    "check_pattern",
    "check_weights",
    "coerce_enum",
    "loader_label",
]

logger = logging.getLogger(__name__)


class SamplingStrategy(AnyCaseEnum):
    """Which loader gives the next batch: in turns, one after another, by weight, or by pattern."""

    SEQUENTIAL = "sequential"
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    ALTERNATING = "alternating"


class EpochLengthPolicy(AnyCaseEnum):
    """How many batches an epoch has, and so each loader's quota in it."""

    SUM_OF_LENGTHS = "sum_of_lengths"
    MAX_OF_LENGTHS = "max_of_lengths"
    MIN_OF_LENGTHS = "min_of_lengths"
    FIXED_NUM_STEPS = "fixed_num_steps"


_E = TypeVar("_E", bound=Enum)


def coerce_enum(enum_type: type[_E], value: object, argument: str) -> _E:
    """Accept an enum member, its value or its name (any case)."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        for member in enum_type:
            if value.lower() in (str(member.value).lower(), member.name.lower()):
                return member
    choices = ", ".join(f"{enum_type.__name__}.{m.name}" for m in enum_type)
    raise SchedulingError(f"{argument} must be one of {choices}; got {value!r}")


def check_int(value: object, argument: str, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchedulingError(f"{argument} must be an integer; got {value!r}. {fix}")
    if value < minimum:
        raise SchedulingError(f"{argument} must be >= {minimum}; got {value}. {fix}")
    return value


def loader_label(idx: int, names: Sequence[str] | None) -> str:
    return f"loader {idx} ({names[idx]!r})" if names else f"loader {idx}"


def check_names(names: Sequence[str] | None, num_loaders: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    if len(names) != num_loaders:
        raise SchedulingError(
            f"dataloader_names has {len(names)} entries but there are {num_loaders} loaders; "
            "give one name per loader"
        )
    return tuple(str(name) for name in names)


def check_lengths(
    lengths: Sequence[int | None], policy: EpochLengthPolicy, names: Sequence[str] | None
) -> tuple[int | None, ...]:
    if len(lengths) == 0:
        raise SchedulingError("the schedule needs at least one loader; got an empty list")
    checked: list[int | None] = []
    for idx, length in enumerate(lengths):
        label = loader_label(idx, names)
        if length is None:
            if policy is not EpochLengthPolicy.FIXED_NUM_STEPS:
                raise SchedulingError(
                    f"{label} has no length (an iterable dataset without __len__), which "
                    f"{policy.name} cannot size; use EpochLengthPolicy.FIXED_NUM_STEPS with "
                    "steps_per_epoch"
                )
            checked.append(None)
            continue
        if isinstance(length, bool) or not isinstance(length, int):
            raise SchedulingError(f"{label} length must be an int or None; got {length!r}")
        if length < 1:
            raise SchedulingError(
                f"{label} is empty (length {length}); remove it from the list of loaders "
                "or give it data (check batch_size and drop_last)"
            )
        checked.append(length)
    return tuple(checked)


def check_weights(
    weights: Sequence[float] | None, num_loaders: int, names: Sequence[str] | None
) -> tuple[float, ...]:
    if weights is None:
        raise SchedulingError(
            "SamplingStrategy.WEIGHTED needs dataloader_weights: give one positive weight per "
            f"loader ({num_loaders} loaders)"
        )
    if len(weights) != num_loaders:
        raise SchedulingError(
            f"dataloader_weights has {len(weights)} entries but there are {num_loaders} "
            "loaders; give one weight per loader"
        )
    checked = []
    for idx, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise SchedulingError(
                f"weight of {loader_label(idx, names)} must be a number; got {weight!r}"
            )
        if not math.isfinite(weight) or weight <= 0:
            raise SchedulingError(
                f"weight of {loader_label(idx, names)} must be finite and > 0; got {weight!r}. "
                "Weights need not sum to 1; to leave a loader out, remove it from the list"
            )
        checked.append(float(weight))
    return tuple(checked)


def check_pattern(pattern: Sequence[int] | None, num_loaders: int) -> tuple[int, ...]:
    if pattern is None or len(pattern) == 0:
        raise SchedulingError(
            "SamplingStrategy.ALTERNATING needs alternating_pattern: a non-empty list of "
            f"loader indices in [0, {num_loaders - 1}], e.g. [0, 0, 1]"
        )
    for position, idx in enumerate(pattern):
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < num_loaders:
            raise SchedulingError(
                f"alternating_pattern[{position}] is {idx!r} but there are {num_loaders} "
                f"loaders; use loader indices in [0, {num_loaders - 1}]"
            )
    missing = sorted(set(range(num_loaders)) - set(pattern))
    if missing:
        logger.warning("alternating_pattern never names loaders %s; they get no batches", missing)
    return tuple(pattern)


# ---------------------------------------------------------------------------------------------
# Quotas: how many batches each loader gives in one epoch, per epoch length policy. With L_i
# the length of loader i: SUM gives L_i (each batch once), MAX gives max L, MIN gives min L, and
# FIXED_NUM_STEPS splits steps_per_epoch evenly (the first loaders get the remainder).
# ---------------------------------------------------------------------------------------------


def _split_evenly(lengths: Sequence[int | None], steps: int | None) -> list[int]:
    assert steps is not None  # checked at construction
    base, extra = divmod(steps, len(lengths))
    return [base + (1 if idx < extra else 0) for idx in range(len(lengths))]


def _known(lengths: Sequence[int | None]) -> list[int]:
    return [length for length in lengths if length is not None]


# Per-loader quotas of ROUND_ROBIN/SEQUENTIAL; their sum is T for WEIGHTED/ALTERNATING.
POLICY_QUOTAS: dict[EpochLengthPolicy, Callable[[Sequence[int | None], int | None], list[int]]] = {
    EpochLengthPolicy.SUM_OF_LENGTHS: lambda lengths, steps: _known(lengths),
    EpochLengthPolicy.MAX_OF_LENGTHS: lambda lengths, steps: [max(_known(lengths))] * len(lengths),
    EpochLengthPolicy.MIN_OF_LENGTHS: lambda lengths, steps: [min(_known(lengths))] * len(lengths),
    EpochLengthPolicy.FIXED_NUM_STEPS: _split_evenly,
}
