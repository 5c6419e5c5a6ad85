"""GenericTrainerConfig and its sections: per-field checks, cross-field checks, enums, helpers."""

from __future__ import annotations

import json
import pickle

import pytest

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    CheckpointConfig,
    EpochLengthPolicy,
    FaultToleranceConfig,
    GenericTrainerConfig,
    HooksConfig,
    LoggingConfig,
    MultiDataLoaderConfig,
    PerformanceConfig,
    PreemptionConfig,
    SamplingStrategy,
    ValAggregation,
    ValidationConfig,
    ValidationFrequency,
    WarmStartConfig,
)

SECTIONS = {
    "checkpoint": CheckpointConfig,
    "preemption": PreemptionConfig,
    "performance": PerformanceConfig,
    "logging": LoggingConfig,
    "validation": ValidationConfig,
    "fault_tolerance": FaultToleranceConfig,
    "hooks": HooksConfig,
}

# (section or "" for top level, field, bad value, text expected in the message)
BAD_VALUES = [
    ("", "experiment_name", "my run", "pattern"),
    ("", "experiment_name", "a/b", "pattern"),
    ("", "experiment_name", "..", "directory name"),
    ("", "experiment_name", "", "pattern"),
    ("", "seed", "abc", "integer"),
    ("", "device", "gpu 0", "not a device"),
    ("", "device", 3, "string"),
    ("", "train_loader_config", 5, "MultiDataLoaderConfig"),
    ("", "per_loader_optimizer_id", [0, -1], "greater than or equal to 0"),
    ("", "per_loader_optimizer_id", [], "at least 1"),
    ("", "loss_weights_per_loader", [1.0, -0.5], "greater than or equal to 0"),
    ("", "loss_weights_per_loader", [float("inf")], "finite"),
    ("", "log_loss_every_n_steps", 0, "greater than or equal to 1"),
    ("", "validate_every_n_epochs", -1, "greater than or equal to 1"),
    ("", "early_stopping_patience", 0, "greater than or equal to 1"),
    ("", "early_stopping_metric", "", "at least 1"),
    ("", "early_stopping_mode", "lowest", "'min' or 'max'"),
    ("", "early_stopping_min_delta", -0.1, "greater than or equal to 0"),
    ("", "on_nonfinite_loss", "ignore", "'raise' or 'skip'"),
    ("", "profile_training", "maybe", "boolean"),
    ("", "warm_start", {"strict": True}, "loader_class"),
    ("checkpoint", "root_dir", "", "at least 1"),
    ("checkpoint", "save_every_n_steps", 0, "greater than or equal to 1"),
    ("checkpoint", "save_every_n_epochs", 0, "greater than or equal to 1"),
    ("checkpoint", "save_every_n_minutes", 0, "greater than 0"),
    ("checkpoint", "save_every_n_minutes", float("nan"), "finite"),
    ("checkpoint", "max_checkpoints", 0, "greater than or equal to 1"),
    ("checkpoint", "filename_template", "model.ckpt", "{step}"),
    ("checkpoint", "filename_template", "{run}_{step}.ckpt", "placeholders"),
    ("checkpoint", "filename_template", "sub/{step}.ckpt", "without directories"),
    ("checkpoint", "monitor_mode", "up", "'min' or 'max'"),
    ("preemption", "signal", "SIGNOPE", "not a signal"),
    ("preemption", "signal", 10_000, "not a signal number"),
    ("preemption", "signal", 1.5, "signal name"),
    ("preemption", "signal", "SIGKILL", "cannot be the preemption signal"),
    ("preemption", "signal", "int", "cannot be the preemption signal"),
    ("preemption", "signal", 19, "cannot be the preemption signal"),
    ("preemption", "max_checkpoint_sec", 0, "greater than 0"),
    ("performance", "gradient_accumulation_steps", 0, "greater than or equal to 1"),
    ("performance", "clip_grad_norm", -1.0, "greater than 0"),
    ("performance", "amp_dtype", "float32", "'bfloat16' or 'float16'"),
    ("performance", "dataloader_num_workers", -1, "greater than or equal to 0"),
    ("performance", "prefetch_factor", 0, "greater than or equal to 1"),
    ("logging", "logger_type", "mlflow", "'composite'"),
    ("logging", "composite_loggers", [], "at least 1"),
    ("logging", "composite_loggers", ["console", "mlflow"], "'wandb'"),
    ("logging", "composite_loggers", ["console", "console"], "unique"),
    ("logging", "composite_loggers", ["console", "jsonl"], "metrics.jsonl is always written"),
    ("logging", "logger_type", "jsonl", "metrics.jsonl is always written"),
    ("logging", "log_scalars_every_n_steps", 0, "greater than or equal to 1"),
    ("logging", "wandb_mode", "sometimes", "'offline'"),
    ("validation", "frequency", "hourly", "not a valid ValidationFrequency"),
    ("validation", "every_n_steps", 0, "greater than or equal to 1"),
    ("validation", "aggregation", "median", "not a valid ValAggregation"),
    ("validation", "aggregation_fn", 3, "callable or its dotted path"),
    ("validation", "aggregation_fn", "not a path", "dotted import path"),
    ("validation", "primary_metric", "", "at least 1"),
    ("hooks", "hook_classes", ["NoDots"], "dotted import path"),
    ("hooks", "hook_configs", {"pkg.Hook": 3}, "dictionary"),
]

LOADER_BAD_VALUES = [
    ("sampling_strategy", "randomly", "not a valid SamplingStrategy"),
    ("sampling_strategy", 3, "round_robin"),
    ("dataloader_names", [], "at least 1"),
    ("dataloader_names", ["a", "a"], "unique"),
    ("dataloader_names", ["has space"], "pattern"),
    ("dataloader_names", [""], "pattern"),
    ("dataloader_weights", [], "at least 1"),
    ("dataloader_weights", [1.0, 0.0], "greater than 0"),
    ("dataloader_weights", [1.0, -2.0], "greater than 0"),
    ("dataloader_weights", [float("inf")], "finite"),
    ("dataloader_weights", [float("nan")], "finite"),
    ("alternating_pattern", [], "at least 1"),
    ("alternating_pattern", [0, -1], "greater than or equal to 0"),
    ("epoch_length_policy", "longest", "not a valid EpochLengthPolicy"),
    ("steps_per_epoch", 0, "greater than or equal to 1"),
    ("burst_size", 0, "greater than or equal to 1"),
    ("cycle_short_loaders", "sometimes", "boolean"),
]


def _path(section: str, field: str) -> str:
    return f"{section}.{field}" if section else field


@pytest.mark.parametrize(("section", "field", "value", "fragment"), BAD_VALUES)
def test_bad_value_at_construction_names_the_field_path(section, field, value, fragment):
    data = {section: {field: value}} if section else {field: value}
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig(**data)
    message = str(info.value)
    assert message.startswith(_path(section, field))
    assert fragment in message


@pytest.mark.parametrize(("section", "field", "value", "fragment"), BAD_VALUES)
def test_bad_value_on_assignment_names_the_field_path_and_keeps_old_value(
    section, field, value, fragment
):
    cfg = GenericTrainerConfig()
    owner = getattr(cfg, section) if section else cfg
    before = getattr(owner, field)
    with pytest.raises(ValueError) as info:
        setattr(owner, field, value)
    assert isinstance(info.value, ConfigError)
    assert str(info.value).startswith(_path(section, field))
    assert fragment in str(info.value)
    assert getattr(owner, field) == before


@pytest.mark.parametrize(("field", "value", "fragment"), LOADER_BAD_VALUES)
def test_bad_loader_value_names_full_path_on_construction_and_assignment(field, value, fragment):
    with pytest.raises(ConfigError, match=rf"^train_loader_config\.{field}") as info:
        GenericTrainerConfig(train_loader_config={field: value})
    assert fragment in str(info.value)
    cfg = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())
    with pytest.raises(ConfigError, match=rf"^train_loader_config\.{field}") as info:
        setattr(cfg.train_loader_config, field, value)
    assert fragment in str(info.value)


def test_standalone_section_error_names_the_field():
    with pytest.raises(ConfigError, match=r"^dataloader_weights\[1\]: .*greater than 0"):
        MultiDataLoaderConfig(dataloader_weights=[1.0, -1.0])


def test_list_element_error_points_at_the_index():
    cfg = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_weights\[2\]"):
        cfg.train_loader_config.dataloader_weights = [1.0, 2.0, -3.0]


def test_bare_loader_config_is_round_robin_with_cycling():
    cfg = MultiDataLoaderConfig()
    assert cfg.sampling_strategy is SamplingStrategy.ROUND_ROBIN
    assert cfg.cycle_short_loaders is True
    assert cfg.epoch_length_policy is EpochLengthPolicy.SUM_OF_LENGTHS
    assert cfg.burst_size == 1


def test_default_val_loader_config_is_sequential_without_cycling():
    cfg = GenericTrainerConfig()
    assert cfg.train_loader_config is None
    assert cfg.val_loader_config.sampling_strategy is SamplingStrategy.SEQUENTIAL
    assert cfg.val_loader_config.cycle_short_loaders is False


def test_val_loader_mapping_starts_from_validation_defaults():
    cfg = GenericTrainerConfig(val_loader_config={"dataloader_names": ["a", "b"]})
    assert cfg.val_loader_config.sampling_strategy is SamplingStrategy.SEQUENTIAL
    assert cfg.val_loader_config.cycle_short_loaders is False
    explicit = GenericTrainerConfig(val_loader_config={"sampling_strategy": "round_robin"})
    assert explicit.val_loader_config.sampling_strategy is SamplingStrategy.ROUND_ROBIN


def test_default_values_match_the_design_contract():
    cfg = GenericTrainerConfig()
    assert (cfg.experiment_name, cfg.seed, cfg.device) == ("experiment", None, "auto")
    assert (cfg.log_loss_every_n_steps, cfg.validate_every_n_epochs) == (50, 1)
    assert (cfg.early_stopping_metric, cfg.early_stopping_mode) == ("val/loss", "min")
    assert cfg.on_nonfinite_loss == "raise" and cfg.profile_training is True
    assert cfg.checkpoint.root_dir == "runs" and cfg.checkpoint.max_checkpoints == 3
    assert cfg.checkpoint.save_every_n_epochs == 1
    assert cfg.preemption.signal == "SIGUSR1" and cfg.preemption.max_checkpoint_sec == 300.0
    assert cfg.performance.amp_dtype == "bfloat16" and cfg.performance.use_amp is False
    assert cfg.logging.logger_type == "console" and cfg.logging.log_scalars_every_n_steps == 50
    assert cfg.validation.frequency is ValidationFrequency.PER_EPOCH
    assert cfg.validation.aggregation is ValAggregation.MICRO_AVG_WEIGHTED_BY_SAMPLES
    assert cfg.fault_tolerance.require_resumable_iterables is True
    assert cfg.hooks.hook_classes == [] and cfg.hooks.hook_configs == {}
    assert cfg.warm_start is None


def test_default_sections_are_not_shared_between_configs():
    first, second = GenericTrainerConfig(), GenericTrainerConfig()
    first.performance.gradient_accumulation_steps = 4
    first.hooks.hook_classes.append("pkg.Hook")
    assert second.performance.gradient_accumulation_steps == 1
    assert second.hooks.hook_classes == []


@pytest.mark.parametrize("text", ["weighted", "WEIGHTED", "Weighted", " weighted "])
def test_enum_fields_accept_value_or_name_in_any_case(text):
    cfg = MultiDataLoaderConfig(sampling_strategy=text, dataloader_weights=[1.0])
    assert cfg.sampling_strategy is SamplingStrategy.WEIGHTED


@pytest.mark.parametrize(
    ("field", "text", "member"),
    [
        ("epoch_length_policy", "FIXED_NUM_STEPS", EpochLengthPolicy.FIXED_NUM_STEPS),
        ("epoch_length_policy", "max_of_lengths", EpochLengthPolicy.MAX_OF_LENGTHS),
        ("sampling_strategy", "Round_Robin", SamplingStrategy.ROUND_ROBIN),
    ],
)
def test_loader_enum_strings_on_assignment(field, text, member):
    cfg = MultiDataLoaderConfig(steps_per_epoch=5)
    setattr(cfg, field, text)
    assert getattr(cfg, field) is member


def test_validation_enums_accept_strings():
    cfg = ValidationConfig(
        frequency="EVERY_N_STEPS", every_n_steps=5, aggregation="Macro_Avg_Equal_Loaders"
    )
    assert cfg.frequency is ValidationFrequency.EVERY_N_STEPS
    assert cfg.aggregation is ValAggregation.MACRO_AVG_EQUAL_LOADERS


def test_bad_enum_string_lists_choices_and_suggests_close_match():
    with pytest.raises(ConfigError) as info:
        MultiDataLoaderConfig(sampling_strategy="weigthed")
    message = str(info.value)
    assert "round_robin" in message and "did you mean 'weighted'?" in message


def test_choice_fields_accept_any_case():
    cfg = GenericTrainerConfig(
        early_stopping_mode="MAX",
        on_nonfinite_loss="Skip",
        device="CPU",
        performance={"amp_dtype": "Float16"},
        logging={"wandb_mode": "OFFLINE"},
    )
    assert (cfg.early_stopping_mode, cfg.on_nonfinite_loss, cfg.device) == ("max", "skip", "cpu")
    assert cfg.performance.amp_dtype == "float16" and cfg.logging.wandb_mode == "offline"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_accepts_torch_device_strings(device):
    assert GenericTrainerConfig(device=device).device == device


@pytest.mark.parametrize(
    ("given", "stored"),
    [("SIGUSR2", "SIGUSR2"), ("usr1", "SIGUSR1"), ("sigterm", "SIGTERM"), (10, "SIGUSR1")],
)
def test_preemption_signal_is_normalised_to_its_name(given, stored):
    import signal

    if stored not in signal.Signals.__members__:
        pytest.skip(f"{stored} does not exist on this platform")
    if isinstance(given, int):
        given = int(signal.Signals[stored])
    assert PreemptionConfig(signal=given).signal == stored


# ----------------------------------------------------------------------------- cross-field


@pytest.mark.parametrize(
    ("kwargs", "path", "fragment"),
    [
        ({"sampling_strategy": "weighted"}, "dataloader_weights", "required"),
        ({"sampling_strategy": "alternating"}, "alternating_pattern", "required"),
        ({"epoch_length_policy": "fixed_num_steps"}, "steps_per_epoch", "required"),
        (
            {"dataloader_names": ["a", "b"], "dataloader_weights": [1.0, 2.0, 3.0]},
            "dataloader_weights",
            "3 entries but dataloader_names has 2",
        ),
        (
            {"dataloader_names": ["a", "b"], "alternating_pattern": [0, 1, 2]},
            "alternating_pattern",
            "[2] are out of range",
        ),
    ],
)
def test_loader_cross_field_rules_run_at_construction(kwargs, path, fragment):
    with pytest.raises(ConfigError, match=rf"^train_loader_config\.{path}: ") as info:
        GenericTrainerConfig(train_loader_config=kwargs)
    assert fragment in str(info.value)
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        MultiDataLoaderConfig(**kwargs)


def test_weighted_then_weights_assignment_sequence_works():
    cfg = GenericTrainerConfig(
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy=SamplingStrategy.SEQUENTIAL, dataloader_names=["main"]
        )
    )
    cfg.train_loader_config.sampling_strategy = SamplingStrategy.WEIGHTED
    cfg.train_loader_config.dataloader_weights = [0.5, 0.3, 0.2]
    cfg.train_loader_config.dataloader_names = ["a", "b", "c"]
    assert cfg.train_loader_config.dataloader_weights == [0.5, 0.3, 0.2]
    cfg.validate_for_fit()


def test_validate_for_fit_reports_inconsistency_left_by_assignments():
    cfg = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())
    cfg.train_loader_config.sampling_strategy = "weighted"  # weights not set yet: allowed
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_weights: required"):
        cfg.validate_for_fit()
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_weights: required"):
        cfg.train_loader_config.validate_for_fit()


def test_validate_for_fit_catches_in_place_list_edits():
    cfg = GenericTrainerConfig(
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy="weighted", dataloader_weights=[1.0]
        )
    )
    cfg.train_loader_config.dataloader_weights.append(-1.0)
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_weights\[1\]"):
        cfg.validate_for_fit()


MISSING_TRAIN_LOADER_CONFIG = (
    "train_loader_config: MultiDataLoaderConfig not provided; it is required, even for one "
    "loader: GenericTrainerConfig(train_loader_config="
    "MultiDataLoaderConfig(dataloader_names=['main']))"
)


def test_validate_for_fit_requires_train_loader_config():
    with pytest.raises(ConfigError) as info:
        GenericTrainerConfig().validate_for_fit()
    assert str(info.value) == MISSING_TRAIN_LOADER_CONFIG


def test_section_cross_field_rules_name_paths_and_wait_for_validate_for_fit():
    cfg = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())
    cfg.validation.frequency = "every_n_steps"
    cfg.logging.logger_type = "composite"
    cfg.validation.aggregation = "custom"
    with pytest.raises(ConfigError) as info:
        cfg.validate_for_fit()
    lines = str(info.value).splitlines()
    assert any(line.startswith("validation.every_n_steps: required") for line in lines)
    assert any(line.startswith("validation.aggregation_fn: required") for line in lines)
    assert any(line.startswith("logging.composite_loggers: required") for line in lines)


@pytest.mark.parametrize(
    ("section", "kwargs", "path"),
    [
        ("validation", {"frequency": "every_n_steps"}, "validation.every_n_steps"),
        ("validation", {"aggregation": "custom"}, "validation.aggregation_fn"),
        ("logging", {"logger_type": "composite"}, "logging.composite_loggers"),
        (  # was silently unused: no TensorBoard files
            "logging",
            {"logger_type": "console", "composite_loggers": ["tensorboard"]},
            "logging.composite_loggers",
        ),
        ("hooks", {"hook_configs": {"pkg.mod.Hook": {}}}, "hooks.hook_configs"),
    ],
)
def test_section_cross_field_rules_run_at_construction(section, kwargs, path):
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        GenericTrainerConfig(**{section: kwargs})


def test_per_loader_lists_must_match_named_train_loaders():
    names = MultiDataLoaderConfig(dataloader_names=["a", "b"])
    with pytest.raises(ConfigError, match=r"^per_loader_optimizer_id: has 3 entries"):
        GenericTrainerConfig(train_loader_config=names, per_loader_optimizer_id=[0, 1, 0])
    with pytest.raises(ConfigError, match=r"^loss_weights_per_loader: has 1 entries"):
        GenericTrainerConfig(train_loader_config=names, loss_weights_per_loader=[1.0])
    ok = GenericTrainerConfig(
        train_loader_config=names, per_loader_optimizer_id=[0, 1], loss_weights_per_loader=[1, 0]
    )
    assert ok.per_loader_optimizer_id == [0, 1]


def test_valid_cross_field_combinations_are_accepted():
    cfg = GenericTrainerConfig(
        train_loader_config={
            "sampling_strategy": "alternating",
            "dataloader_names": ["a", "b"],
            "alternating_pattern": [0, 0, 1],
            "epoch_length_policy": "fixed_num_steps",
            "steps_per_epoch": 12,
            "burst_size": 2,
        },
        validation={"frequency": "every_n_steps", "every_n_steps": 50},
        logging={"logger_type": "composite", "composite_loggers": ["console", "tensorboard"]},
        hooks={"hook_classes": ["pkg.mod.Hook"], "hook_configs": {"pkg.mod.Hook": {"k": 1}}},
        warm_start={"loader_class": "pkg.mod.load", "strict": False},
    )
    cfg.validate_for_fit()
    assert cfg.warm_start == WarmStartConfig(loader_class="pkg.mod.load", strict=False)


# ----------------------------------------------------------------------------- loaders at fit


def test_validate_against_loaders_reports_weight_count_mismatch():
    cfg = GenericTrainerConfig(
        train_loader_config=MultiDataLoaderConfig(
            sampling_strategy="weighted", dataloader_weights=[1, 2]
        )
    )
    with pytest.raises(ValueError) as info:
        cfg.train_loader_config.validate_against_loaders(3, "train_loader_config")
    assert str(info.value) == (
        "train_loader_config.dataloader_weights has 2 entries but fit() got 3 train loaders; "
        "give one weight per loader"
    )


@pytest.mark.parametrize(
    ("kwargs", "num_loaders", "fragment"),
    [
        (
            {"dataloader_names": ["a", "b"]},
            1,
            "val_loader_config.dataloader_names has 2 entries but fit() got 1 val loader;",
        ),
        (
            {"alternating_pattern": [0, 3]},
            2,
            "val_loader_config.alternating_pattern uses loader indices [3]",
        ),
        ({}, 0, "fit() got no val loaders"),
    ],
)
def test_validate_against_loaders_mismatches(kwargs, num_loaders, fragment):
    cfg = MultiDataLoaderConfig(**kwargs)
    with pytest.raises(ConfigError) as info:
        cfg.validate_against_loaders(num_loaders, "val_loader_config")
    assert fragment in str(info.value)


def test_validate_against_loaders_accepts_matching_counts():
    cfg = MultiDataLoaderConfig(
        sampling_strategy="alternating",
        dataloader_names=["a", "b"],
        dataloader_weights=[1, 1],
        alternating_pattern=[1, 0],
    )
    cfg.validate_against_loaders(2, "train_loader_config")


def test_resolved_names_default_and_configured():
    assert MultiDataLoaderConfig().resolved_names(3) == ["dl0", "dl1", "dl2"]
    cfg = GenericTrainerConfig(train_loader_config={"dataloader_names": ["x", "y"]})
    assert cfg.train_loader_config.resolved_names(2) == ["x", "y"]
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_names has 2"):
        cfg.train_loader_config.resolved_names(3)


# ----------------------------------------------------------------------------- aggregation_fn


def test_aggregation_fn_dotted_path_is_resolved_lazily():
    cfg = ValidationConfig(aggregation="custom", aggregation_fn="json.dumps")
    assert cfg.aggregation_fn == "json.dumps"
    assert cfg.resolve_aggregation_fn() is json.dumps


def test_aggregation_fn_callable_is_kept_and_serialised_as_dotted_path():
    cfg = GenericTrainerConfig(validation={"aggregation": "custom", "aggregation_fn": json.dumps})
    assert cfg.validation.resolve_aggregation_fn() is json.dumps
    assert cfg.to_dict()["validation"]["aggregation_fn"] == "json.dumps"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("json.no_such_function", "cannot import"),
        ("no_such_pkg_xyz.fn", "cannot import"),
        ("json.decoder", "not a callable"),
    ],
)
def test_unresolvable_aggregation_fn_names_the_field(path, fragment):
    cfg = GenericTrainerConfig(validation={"aggregation": "custom", "aggregation_fn": path})
    with pytest.raises(ConfigError, match=r"^validation\.aggregation_fn: ") as info:
        cfg.validation.resolve_aggregation_fn()
    assert fragment in str(info.value)


def test_lambda_or_local_aggregation_fn_cannot_be_serialised():
    def local(metrics):
        return metrics

    for fn, kind in ((lambda m: m, "a lambda"), (local, "a local function")):
        cfg = GenericTrainerConfig(validation={"aggregation": "custom", "aggregation_fn": fn})
        assert cfg.validation.resolve_aggregation_fn() is fn
        with pytest.raises(
            ConfigError, match=rf"^validation\.aggregation_fn: .*{kind}.*module level"
        ):
            cfg.to_dict()


# ----------------------------------------------------------------------------- misc


def test_every_field_has_a_description():
    models = [GenericTrainerConfig, MultiDataLoaderConfig, WarmStartConfig, *SECTIONS.values()]
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description and len(field.description) > 10, f"{model.__name__}.{name}"


def test_sections_have_the_field_names_of_the_design_contract():
    expected = {
        "checkpoint": {
            "root_dir",
            "save_every_n_steps",
            "save_every_n_epochs",
            "save_every_n_minutes",
            "max_checkpoints",
            "filename_template",
            "monitor_metric",
            "monitor_mode",
            "async_save",
        },
        "preemption": {"signal", "max_checkpoint_sec", "requeue_job", "resume_from_latest_symlink"},
        "fault_tolerance": {
            "require_resumable_iterables",
            "record_data_fingerprint",
            "lock_run_directory",
            "allow_schedule_changes_on_resume",
        },
        "hooks": {"hook_classes", "hook_configs", "continue_on_hook_error"},
    }
    for section, names in expected.items():
        assert set(SECTIONS[section].model_fields) == names


def test_config_pickles_and_copies_equal():
    cfg = GenericTrainerConfig(train_loader_config={"dataloader_names": ["a"]}, seed=1)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    copy = cfg.model_copy(deep=True)
    assert copy == cfg
    copy.seed = 2
    assert copy != cfg


def test_nested_section_equals_standalone_section():
    standalone = MultiDataLoaderConfig(dataloader_names=["a"])
    nested = GenericTrainerConfig(
        train_loader_config={"dataloader_names": ["a"]}
    ).train_loader_config
    assert nested == standalone


def test_assigned_section_reports_its_new_path():
    cfg = GenericTrainerConfig()
    cfg.train_loader_config = MultiDataLoaderConfig()
    with pytest.raises(ConfigError, match=r"^train_loader_config\.burst_size"):
        cfg.train_loader_config.burst_size = 0
    cfg.performance = {"gradient_accumulation_steps": 2}
    assert cfg.performance.gradient_accumulation_steps == 2
    with pytest.raises(ConfigError, match=r"^performance\.gradient_accumulation_steps"):
        cfg.performance.gradient_accumulation_steps = 0


def test_a_single_loader_name_given_as_a_string_says_to_use_a_list():
    # The guide's single loader is dataloader_names=["main"]; "main" said only
    # "Input should be a valid list".
    with pytest.raises(ConfigError, match=r"dataloader_names: .*a list.*\['main'\]"):
        MultiDataLoaderConfig(dataloader_names="main")
    config = GenericTrainerConfig(train_loader_config=MultiDataLoaderConfig())
    with pytest.raises(ConfigError, match=r"^train_loader_config\.dataloader_names: .*\['main'\]"):
        config.train_loader_config.dataloader_names = "main"
