"""The top-level package: lazy re-exports, and no optional backend on import (fast imports).

The import cost (< 1.5 s beyond ``import torch``) is measured, not asserted: this test prints
it, and ``bench/import_time.py`` reports it against the target.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import model_training_framework as mtf

SRC_DIR = Path(__file__).resolve().parents[1] / "src"
OPTIONAL_BACKENDS = ("tensorboard", "torch.utils.tensorboard", "wandb", "matplotlib")

# Runs in a fresh interpreter: times the imports, then reports which backends got loaded.
_PROBE = """
import json, sys, time
backends = {backends!r}
start = time.perf_counter()
import torch
torch_done = time.perf_counter()
import model_training_framework
model_training_framework.GenericTrainer
package_done = time.perf_counter()
after_trainer = [name for name in backends if name in sys.modules]
for name in model_training_framework.__all__:
    getattr(model_training_framework, name)
after_all = [name for name in backends if name in sys.modules]
print(json.dumps({{
    "torch_s": torch_done - start,
    "package_s": package_done - torch_done,
    "after_trainer": after_trainer,
    "after_all": after_all,
}}))
"""


def _probe_fresh_interpreter() -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    for key in ("WANDB_MODE",):  # a backend must not load whatever the environment says
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(backends=OPTIONAL_BACKENDS)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh_import() -> dict:
    return _probe_fresh_interpreter()


def test_importing_the_package_and_the_trainer_loads_no_optional_backend(fresh_import):
    print(
        f"\nimport torch: {fresh_import['torch_s']:.2f} s; "
        f"then model_training_framework + GenericTrainer: {fresh_import['package_s']:.2f} s "
        "(target < 1.5 s; measured by bench/import_time.py, not asserted)"
    )
    assert fresh_import["after_trainer"] == []


def test_every_top_level_name_loads_no_optional_backend(fresh_import):
    assert fresh_import["after_all"] == []


@pytest.mark.parametrize("name", sorted(set(mtf.__all__) - {"__version__"}))
def test_each_top_level_name_is_the_subpackage_object(name):
    subpackage = importlib.import_module(mtf._LAZY_NAMES[name])
    assert getattr(mtf, name) is getattr(subpackage, name)


def test_lazy_table_and_all_list_the_same_names():
    assert set(mtf._LAZY_NAMES) | {"__version__"} == set(mtf.__all__)


@pytest.mark.parametrize(
    "name",
    [
        "GenericTrainer",
        "GenericTrainerConfig",
        "MultiDataLoaderConfig",
        "SamplingStrategy",
        "EpochLengthPolicy",
        "TrainerHooks",
        "FitResult",
        "FitStatus",
        "ExperimentConfig",
        "ParameterGrid",
        "ParameterGridSearch",
        "NamingStrategy",
        "SLURMLauncher",
        "LocalLauncher",
    ],
)
def test_most_used_names_are_re_exported(name):
    assert name in mtf.__all__
    assert name in dir(mtf)


@pytest.mark.parametrize("name", ["trainer", "config", "slurm", "runner", "errors"])
def test_subpackages_are_reachable_as_attributes(name):
    assert getattr(mtf, name).__name__ == f"model_training_framework.{name}"


def test_unknown_attribute_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="has no attribute 'GenericTrainr'"):
        mtf.GenericTrainr  # noqa: B018


def test_version_is_a_string():
    assert isinstance(mtf.__version__, str) and mtf.__version__


def test_the_trainer_package_exports_its_names_lazily():
    import model_training_framework.trainer as trainer_pkg

    assert set(trainer_pkg.__all__) == set(trainer_pkg._LAZY_NAMES)
    for name in trainer_pkg.__all__:
        value = getattr(trainer_pkg, name)
        assert value is getattr(importlib.import_module(trainer_pkg._LAZY_NAMES[name]), name)
