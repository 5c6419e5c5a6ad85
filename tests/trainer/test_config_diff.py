"""config_diff (PURE): which differences between two runs' signatures refuse a resume."""

from __future__ import annotations

import pytest

from model_training_framework.trainer.state.config_diff import (
    ABSENT,
    Change,
    ChangeKind,
    classify,
    compare_signatures,
    describe_changes,
    flatten,
)


def test_flatten_makes_dotted_keys_and_keeps_lists_and_empty_sections_whole():
    nested = {"a": {"b": {"c": 1}, "d": [1, {"x": 2}]}, "e": {}, "f": None}

    assert flatten(nested) == {"a.b.c": 1, "a.d": [1, {"x": 2}], "e": {}, "f": None}


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("model.body.0.weight", ChangeKind.INCOMPATIBLE),
        ("world_size", ChangeKind.INCOMPATIBLE),
        ("train_loaders.names", ChangeKind.INCOMPATIBLE),
        ("train_loaders.lengths", ChangeKind.INCOMPATIBLE),
        ("optimizers.count", ChangeKind.INCOMPATIBLE),
        ("optimizers[1].param_groups[0].num_params", ChangeKind.INCOMPATIBLE),
        ("train_loader_config.sampling_strategy", ChangeKind.INCOMPATIBLE),
        ("train_loader_config.dataloader_names", ChangeKind.INCOMPATIBLE),
        ("train_loader_config.alternating_pattern", ChangeKind.INCOMPATIBLE),
        ("train_loader_config.burst_size", ChangeKind.INCOMPATIBLE),
        ("train_loader_config.dataloader_weights", ChangeKind.SCHEDULE),
        ("performance.gradient_accumulation_steps", ChangeKind.SCHEDULE),
        ("optimizers[0].param_groups[0].lr", ChangeKind.OTHER),
        ("performance.clip_grad_norm", ChangeKind.OTHER),
        ("val_loader_config.sampling_strategy", ChangeKind.OTHER),
        ("seed", ChangeKind.OTHER),
        ("checkpoint.save_every_n_steps", ChangeKind.OTHER),
        ("model_name", ChangeKind.OTHER),  # not the model. prefix
    ],
)
def test_each_key_has_its_kind(key, kind):
    assert classify(key) is kind


def test_compare_sorts_the_differences_by_kind_and_key_and_ignores_equal_values():
    saved = {
        "model.w": [8, 4],
        "performance.gradient_accumulation_steps": 2,
        "seed": 1,
        "logging.progress_bar": True,
        "same": [1.0, 2.0],
        "gone": 3,
    }
    current = {
        "model.w": [16, 4],
        "performance.gradient_accumulation_steps": 4,
        "seed": 1,
        "logging.progress_bar": False,
        "same": [1, 2],  # equal numbers in another type are equal
        "new": None,
    }

    diff = compare_signatures(saved, current)

    assert diff.incompatible == [Change("model.w", [8, 4], [16, 4])]
    assert diff.schedule == [Change("performance.gradient_accumulation_steps", 2, 4)]
    assert diff.other == [
        Change("gone", 3, ABSENT),
        Change("logging.progress_bar", True, False),
        Change("new", ABSENT, None),
    ]
    assert diff.changed("seed") is False and diff.changed("gone") is True


def test_a_bool_differs_from_the_number_it_equals():
    diff = compare_signatures({"x": True, "y": 0}, {"x": 1, "y": False})

    assert [c.key for c in diff.other] == ["x", "y"]


@pytest.mark.parametrize(
    ("key", "saved", "current"),
    [
        ("fault_tolerance.allow_schedule_changes_on_resume", False, True),
        ("experiment_name", "old", "old-from-step-400"),  # started from another run's file
        ("checkpoint.root_dir", "/scratch/runs", "/home/me/runs"),  # a moved run directory
    ],
)
def test_the_switch_and_the_run_directory_names_are_not_changes(key, saved, current):
    assert not compare_signatures({key: saved}, {key: current})


def test_identical_signatures_have_no_difference():
    signature = {"a.b": [1, 2], "model.w": [3], "world_size": 2}

    assert not compare_signatures(signature, dict(signature))


def test_describe_lists_one_indented_line_per_change_and_shortens_long_values():
    long_list = list(range(100))
    text = describe_changes([Change("a", 1, 2), Change("b", ABSENT, long_list)])

    first, second = text.splitlines()
    assert first == "  a: 1 -> 2"
    assert second.startswith("  b: <absent> -> [0, 1, 2") and second.endswith("...")
    assert len(second) < 80
