"""docs/configuration.md is exactly what scripts/gen_config_docs.py generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts" / "gen_config_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_configuration_doc_matches_the_generated_text():
    generated = _generator().render()
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generated, "run: python scripts/gen_config_docs.py"


def test_every_trainer_and_experiment_field_is_documented():
    from model_training_framework.config.experiment import ExperimentConfig

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in ExperimentConfig.model_fields:
        assert f"| `{name}` |" in text
    assert "| `performance.gradient_accumulation_steps` |" in text
    assert "| `train_loader_config.sampling_strategy` |" in text
