"""PURE, TEMPORARY: stand-ins for the enums of ``trainer/schedule.py`` until that module lands.

Delete this file once ``schedule.py`` defines ``SamplingStrategy`` and ``EpochLengthPolicy``
(``trainer/config.py`` then imports them from there).
"""

from __future__ import annotations

import enum

__all__ = ["EpochLengthPolicy", "SamplingStrategy"]


class SamplingStrategy(str, enum.Enum):
    """Which loader gives the next batch."""

    SEQUENTIAL = "sequential"
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    ALTERNATING = "alternating"


class EpochLengthPolicy(str, enum.Enum):
    """How long an epoch is."""

    SUM_OF_LENGTHS = "sum_of_lengths"
    MAX_OF_LENGTHS = "max_of_lengths"
    MIN_OF_LENGTHS = "min_of_lengths"
    FIXED_NUM_STEPS = "fixed_num_steps"
