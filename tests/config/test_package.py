"""The ``model_training_framework.config`` package: every public name imports (lazily)."""

from __future__ import annotations

import importlib

import pytest

import model_training_framework.config as config_pkg

PUBLIC_NAMES = sorted(config_pkg.__all__)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_each_public_name_imports_from_the_config_package(name):
    namespace: dict[str, object] = {}
    exec(f"from model_training_framework.config import {name}", namespace)
    defining_module = importlib.import_module(config_pkg._LAZY_NAMES[name])
    assert namespace[name] is getattr(defining_module, name)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_each_public_name_is_public_in_its_defining_module(name):
    defining_module = importlib.import_module(config_pkg._LAZY_NAMES[name])
    assert name in defining_module.__all__


def test_lazy_table_and_all_list_the_same_names():
    assert set(config_pkg._LAZY_NAMES) == set(config_pkg.__all__)


def test_star_import_gives_every_public_name():
    namespace: dict[str, object] = {}
    exec("from model_training_framework.config import *", namespace)
    assert set(config_pkg.__all__) <= set(namespace)


@pytest.mark.parametrize(
    "name", ["ParameterGrid", "ParameterGridSearch", "NamingStrategy", "ConfigurationManager"]
)
def test_sweep_names_named_by_the_spec_are_exported(name):
    assert name in config_pkg.__all__
    assert name in dir(config_pkg)


def test_trainer_config_classes_are_exported_as_the_same_objects():
    from model_training_framework.config import GenericTrainerConfig, LoggingConfig
    from model_training_framework.trainer import config as trainer_config

    assert GenericTrainerConfig is trainer_config.GenericTrainerConfig
    assert LoggingConfig is trainer_config.LoggingConfig


def test_every_trainer_config_name_is_exported_by_the_config_package():
    from model_training_framework.trainer import config as trainer_config

    missing = set(trainer_config.__all__) - set(config_pkg.__all__)
    assert not missing, (
        f"{sorted(missing)} are public in trainer/config/ but not exported by "
        "model_training_framework.config: add them to _TRAINER_CONFIG_NAMES and __all__ in config/__init__.py"
    )


def test_importing_the_config_package_does_not_import_torch():
    import subprocess
    import sys

    probe = (
        "import sys, model_training_framework.config as c; c.__all__; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "c.GenericTrainerConfig; assert 'model_training_framework.trainer.config' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
