"""docs/configuration.md is exactly what scripts/gen_config_docs.py generates."""

from __future__ import annotations

import importlib.util
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from model_training_framework.experiment.config import ExperimentConfig
from model_training_framework.trainer import GenericTrainerConfig

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


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The config section class inside a field's annotation (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_model(arg)
        if found is not None:
            return found
    return None


def _field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field of ``model`` as a dotted path, nested sections included."""
    for name, field in model.model_fields.items():
        yield prefix + name
        section = _section_model(field.annotation)
        if section is not None:
            yield from _field_paths(section, f"{prefix}{name}.")


def test_every_trainer_and_experiment_field_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in ExperimentConfig.model_fields:
        assert f"| `{name}` |" in text
    assert "| `performance.gradient_accumulation_steps` |" in text
    assert "| `train_loader_config.sampling_strategy` |" in text
    for config in (GenericTrainerConfig, ExperimentConfig):
        paths = list(_field_paths(config))
        assert len(paths) > len(config.model_fields), "nested sections were not walked"
        missing = [path for path in paths if f"| `{path}` |" not in text]
        assert missing == [], f"{config.__name__} fields missing from configuration.md: {missing}"


def _row(text: str, key: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_section_defaults_are_those_of_the_parent_fields_default():
    """The validation schedule defaults to SEQUENTIAL without cycling (its field's default), but
    its rows showed MultiDataLoaderConfig's own defaults, round_robin and true."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    default = GenericTrainerConfig().val_loader_config
    assert default.sampling_strategy.value == "sequential" and not default.cycle_short_loaders
    assert _row(text, "val_loader_config.sampling_strategy")[2] == '`"sequential"`'
    assert _row(text, "val_loader_config.cycle_short_loaders")[2] == "`False`"
    assert _row(text, "train_loader_config.sampling_strategy")[2] == '`"round_robin"`'
    assert _row(text, "train_loader_config.cycle_short_loaders")[2] == "`True`"
