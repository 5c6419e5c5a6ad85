"""GenericTrainerConfig.distributed: defaults, checks, YAML round trip, unknown keys."""

from __future__ import annotations

import pytest

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import DistributedConfig, GenericTrainerConfig


def test_defaults_keep_ddp_with_the_automatic_unused_parameter_choice():
    section = GenericTrainerConfig().distributed
    assert section == DistributedConfig()
    assert (section.strategy, section.fsdp_wrap) == ("ddp", [])
    assert section.fsdp_reshard_after_forward is True
    assert section.find_unused_parameters is None


def test_strategy_accepts_any_case_and_rejects_unknown_names_with_the_choices():
    assert DistributedConfig(strategy="FSDP").strategy == "fsdp"
    with pytest.raises(ConfigError, match=r"distributed\.strategy: .*'ddp' or 'fsdp'"):
        GenericTrainerConfig(distributed={"strategy": "zero3"})


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("fsdp_wrap", ["Block", "Block"], "repeated: Block"),
        ("fsdp_wrap", ["my.Block"], "pattern"),
        ("fsdp_wrap", "Block", "list"),
        ("fsdp_reshard_after_forward", "sometimes", "boolean"),
        ("find_unused_parameters", "auto", "boolean"),
    ],
)
def test_bad_values_name_the_field_path_on_construction_and_assignment(field, value, fragment):
    with pytest.raises(ConfigError, match=rf"distributed\.{field}.*{fragment}"):
        GenericTrainerConfig(distributed={field: value})
    config = GenericTrainerConfig()
    with pytest.raises(ConfigError, match=rf"distributed\.{field}.*{fragment}"):
        setattr(config.distributed, field, value)
    assert getattr(config.distributed, field) == getattr(DistributedConfig(), field)


def test_unknown_key_suggests_the_close_match():
    with pytest.raises(ConfigError, match=r"distributed\.fsdp_wrapp: unknown key; did you mean"):
        GenericTrainerConfig.from_dict({"distributed": {"fsdp_wrapp": ["Block"]}})


def test_yaml_round_trip_is_exact(tmp_path):
    config = GenericTrainerConfig(
        train_loader_config={"dataloader_names": ["a"]},
        distributed={
            "strategy": "fsdp",
            "fsdp_wrap": ["TransformerBlock", "Embedding"],
            "fsdp_reshard_after_forward": False,
            "find_unused_parameters": True,
        },
    )
    path = tmp_path / "config.yaml"
    config.to_yaml(path)
    assert "strategy: fsdp" in path.read_text()
    assert GenericTrainerConfig.from_yaml(path) == config
    assert GenericTrainerConfig.from_dict(config.to_dict()) == config
