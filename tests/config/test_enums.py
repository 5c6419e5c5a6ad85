"""The config enums read a member from its value or its name, in any case, as config fields do."""

from __future__ import annotations

import pytest

from model_training_framework.config.naming import NamingStrategy
from model_training_framework.trainer import (
    EpochLengthPolicy,
    SamplingStrategy,
    ValAggregation,
    ValidationFrequency,
)


@pytest.mark.parametrize(
    ("enum_cls", "text", "member"),
    [
        (SamplingStrategy, "SEQUENTIAL", SamplingStrategy.SEQUENTIAL),  # was a ValueError
        (SamplingStrategy, "Round_Robin", SamplingStrategy.ROUND_ROBIN),
        (EpochLengthPolicy, "MAX_OF_LENGTHS", EpochLengthPolicy.MAX_OF_LENGTHS),
        (ValAggregation, "MACRO_AVG_EQUAL_LOADERS", ValAggregation.MACRO_AVG_EQUAL_LOADERS),
        (ValidationFrequency, "Per_Epoch", ValidationFrequency.PER_EPOCH),
        (NamingStrategy, "HASH_BASED", NamingStrategy.HASH_BASED),
        (SamplingStrategy, "weighted", SamplingStrategy.WEIGHTED),
    ],
)
def test_an_enum_is_read_from_its_name_or_value_in_any_case(enum_cls, text, member):
    assert enum_cls(text) is member


def test_an_unknown_name_is_still_a_value_error():
    with pytest.raises(ValueError, match="'round-robin' is not a valid SamplingStrategy"):
        SamplingStrategy("round-robin")
