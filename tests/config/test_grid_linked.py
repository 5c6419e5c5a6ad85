"""add_linked_parameters(keys, rows) with rows given as dicts (the reference framework's spelling)."""

from __future__ import annotations

import pytest

from model_training_framework.config.grid import ParameterGrid
from model_training_framework.errors import ConfigError

KEYS = ["optimizer.lr", "training.max_epochs"]


def _values(grid: ParameterGrid) -> list[dict]:
    return list(grid.generate_permutations())


def test_dict_rows_are_matched_by_key_in_any_order():
    grid = ParameterGrid("g").add_linked_parameters(
        KEYS,
        [
            {"optimizer.lr": 0.1, "training.max_epochs": 1},
            {"training.max_epochs": 2, "optimizer.lr": 0.01},  # another key order
        ],
    )
    by_tuples = ParameterGrid("t").add_linked_parameters(KEYS, [(0.1, 1), (0.01, 2)])
    assert (
        _values(grid)
        == _values(by_tuples)
        == [
            {"optimizer.lr": 0.1, "training.max_epochs": 1},
            {"optimizer.lr": 0.01, "training.max_epochs": 2},
        ]
    )


def test_dict_rows_and_tuple_rows_mix():
    grid = ParameterGrid("g").add_linked_parameters(
        KEYS, [(0.1, 1), {"training.max_epochs": 2, "optimizer.lr": 0.01}]
    )
    assert [row["optimizer.lr"] for row in _values(grid)] == [0.1, 0.01]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"optimizer.lr": 0.1}, r"missing \['training.max_epochs'\]"),
        (
            {"optimizer.lr": 0.1, "training.max_epochs": 1, "model.hidden": 8},
            r"unexpected \['model.hidden'\]",
        ),
        (
            {"optimizer.lr": 0.1, "training.epochs": 1},
            r"missing \['training.max_epochs'\].*unexpected \['training.epochs'\]",
        ),
    ],
)
def test_dict_rows_with_missing_or_extra_keys_are_rejected(row, message):
    with pytest.raises(ConfigError, match=message):
        ParameterGrid("g").add_linked_parameters(KEYS, [row])


def test_unordered_rows_are_rejected_instead_of_guessing_an_order():
    with pytest.raises(ConfigError, match="linked row"):
        ParameterGrid("g").add_linked_parameters(KEYS, [{0.1, 1}])
