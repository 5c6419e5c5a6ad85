"""docs/migration.md lists every old spelling the package still reads (config keys and hook
signatures), so the table cannot fall behind the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_training_framework.config.legacy import EXPERIMENT_RULES
from model_training_framework.trainer import builtin_hooks
from model_training_framework.trainer.legacy_hooks import LEGACY_SIGNATURES

MIGRATION = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()


@pytest.mark.parametrize("rule", EXPERIMENT_RULES, ids=lambda rule: ".".join(rule.old_path))
def test_every_renamed_config_key_is_in_the_migration_table(rule):
    assert f"`{'.'.join(rule.old_path)}" in MIGRATION


@pytest.mark.parametrize("name", sorted(LEGACY_SIGNATURES))
def test_every_adapted_hook_signature_is_in_the_migration_table(name):
    assert f"`{LEGACY_SIGNATURES[name].spelling}`" in MIGRATION


@pytest.mark.parametrize("name", builtin_hooks.__all__)
def test_every_builtin_hook_is_in_the_migration_table(name):
    assert f"`{name}" in MIGRATION


def test_the_changed_hook_error_default_is_documented():
    assert "continue_on_hook_error" in MIGRATION
