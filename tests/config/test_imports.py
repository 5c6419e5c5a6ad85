"""config/imports.py: the one dotted-path import, its messages, and every config reader using it."""

from __future__ import annotations

import json
import os

import pytest
import torch

from model_training_framework.config.imports import (
    import_callable,
    import_configured,
    import_object,
)
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.entry import build_model
from model_training_framework.trainer.config import (
    GenericTrainerConfig,
    HooksConfig,
    WarmStartConfig,
)
from model_training_framework.trainer.hooks import load_hooks
from model_training_framework.trainer.state.resume import warm_start

MISSING_PACKAGE = (
    "cannot import 'no_such_pkg_xyz.fn': there is no module 'no_such_pkg_xyz'; check the "
    "spelling and that the package is importable (installed, or on the Python path: run from "
    "the project directory or set PYTHONPATH)"
)


def test_import_object_imports_modules_attributes_and_nested_attributes():
    assert import_object("json.dumps") is json.dumps
    assert import_object("os.path.join") is os.path.join
    assert import_object("json.JSONDecoder.decode") is json.JSONDecoder.decode


def test_a_missing_package_says_which_and_how_to_fix_it():
    with pytest.raises(ImportError) as info:
        import_object("no_such_pkg_xyz.fn")
    assert str(info.value) == MISSING_PACKAGE


def test_a_missing_attribute_names_its_owner_and_lists_what_is_there():
    with pytest.raises(ImportError) as info:
        import_object("json.JSONDecoder.nope")
    message = str(info.value)
    assert message.startswith(
        "cannot import 'json.JSONDecoder.nope': 'json.JSONDecoder' has no attribute 'nope'; "
        "available: ['decode', 'raw_decode']"
    )


def test_a_long_list_of_available_names_is_cut_short():
    with pytest.raises(
        ImportError, match=r"has no attribute 'nope'; available: \[.*\] and \d+ more$"
    ):
        import_object("os.nope")


def test_a_missing_dependency_of_an_existing_module_names_both(tmp_path, monkeypatch):
    (tmp_path / "needs_dep_xyz.py").write_text("import dep_of_it_xyz\nvalue = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        import_object("needs_dep_xyz.value")
    assert str(info.value) == (
        "cannot import 'needs_dep_xyz.value': importing module 'needs_dep_xyz' failed: "
        "No module named 'dep_of_it_xyz'"
    )
    assert info.value.name == "dep_of_it_xyz"


def test_an_error_raised_while_importing_the_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "raises_on_import_xyz.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="boom at import"):
        import_object("raises_on_import_xyz.value")


@pytest.mark.parametrize("path", ["nodots", "pkg..mod", "pkg.mod:fn", "1pkg.mod"])
def test_a_string_that_is_no_dotted_path_is_refused(path):
    with pytest.raises(ImportError, match=r"is not a dotted path like 'package\.module\.name'"):
        import_object(path)


def test_config_field_errors_are_config_errors_prefixed_with_the_field():
    with pytest.raises(ConfigError) as info:
        import_configured("no_such_pkg_xyz.fn", "model.factory")
    assert str(info.value) == f"model.factory: {MISSING_PACKAGE}"

    with pytest.raises(ConfigError) as info:
        import_configured(3, "model.factory")
    assert str(info.value) == (
        "model.factory: expected a dotted path such as 'my_project.module.name', got 3"
    )

    with pytest.raises(ConfigError) as info:
        import_callable("json.decoder", "model.factory")
    assert str(info.value) == "model.factory: 'json.decoder' is a module, not a callable"


def _hooks(path: str) -> None:
    load_hooks(HooksConfig(hook_classes=[path]))


def _aggregation_fn(path: str) -> None:
    config = GenericTrainerConfig(validation={"aggregation": "custom", "aggregation_fn": path})
    config.validation.resolve_aggregation_fn()


def _warm_start(path: str) -> None:
    warm_start(None, torch.nn.Linear(1, 1), None, WarmStartConfig(loader_class=path))


def _model_factory(path: str) -> None:
    build_model({"factory": path})


@pytest.mark.parametrize(
    ("read", "field"),
    [
        (_hooks, "hooks.hook_classes[0]"),
        (_aggregation_fn, "validation.aggregation_fn"),
        (_warm_start, "warm_start.loader_class"),
        (_model_factory, "model.factory"),
    ],
)
def test_every_config_reader_reports_a_bad_path_the_same_way(read, field):
    with pytest.raises(ConfigError) as info:
        read("no_such_pkg_xyz.fn")
    assert str(info.value) == f"{field}: {MISSING_PACKAGE}"
