"""PURE modules import only the standard library, errors.py and other PURE modules, so they can be
unit-tested and reasoned about without torch, the trainer or any I/O.

The check reads each module's source with ``ast`` (nothing is imported), so it also sees
imports inside functions. Every listed module must exist, so a rename cannot quietly drop
it from the check.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = "model_training_framework"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / PACKAGE
PURE_MODULES = [
    "text",
    "trainer.data.schedule",
    "trainer.data.cursor",
    "trainer.data.orders",
    "trainer.data.weighted",
    "trainer.data.seeds",
    "trainer.data.inputs",
    "trainer.metrics.aggregation",
    "trainer.metrics.means",
    "trainer.state.config_diff",
    "config.grid",
    "config.grid_axes",
    "config.grid_expansion",
    "config.grid_data",
    "config.distributions",
    "config.paths",
    "config.naming",
    "config.enums",
    "launch.slurm.template",
    "launch.slurm.parsing",
    "launch.slurm.job_summary",
    "launch.slurm.launch",
]
# errors.py is imported by PURE modules for their exception types; it must be stdlib-only too.
ALLOWED_PACKAGE_MODULES = {f"{PACKAGE}.{name}" for name in PURE_MODULES} | {f"{PACKAGE}.errors"}
ALWAYS_FORBIDDEN = {"torch", "numpy", "subprocess"}


def module_path(dotted: str) -> Path:
    return PACKAGE_DIR.joinpath(*dotted.split(".")).with_suffix(".py")


def imported_names(source: str, module: str) -> list[str]:
    """Absolute names imported by ``module`` (``from a import b`` gives ``a.b`` and ``a``)."""
    package_parts = f"{PACKAGE}.{module}".split(".")[:-1]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base_parts = package_parts[: len(package_parts) - node.level + 1] if node.level else []
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
            if base == "__future__":
                continue
            for alias in node.names:
                names.append(f"{base}.{alias.name}")
    return names


def violations(source: str, module: str) -> list[str]:
    """Imports of ``module`` that a PURE module may not make."""
    bad = []
    for name in imported_names(source, module):
        top = name.split(".")[0]
        if top in ALWAYS_FORBIDDEN:
            bad.append(name)
        elif top == PACKAGE:
            allowed = any(name == ok or name.startswith(f"{ok}.") for ok in ALLOWED_PACKAGE_MODULES)
            if not allowed:
                bad.append(name)
        elif top not in sys.stdlib_module_names:
            bad.append(name)
    return bad


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_only_stdlib_and_pure_modules(module):
    path = module_path(module)
    assert path.is_file(), f"PURE module {module} not found at {path}: update PURE_MODULES"
    source = path.read_text(encoding="utf-8")
    assert violations(source, module) == [], f"{module} is listed as PURE"


def test_errors_module_imports_only_the_standard_library():
    source = module_path("errors").read_text(encoding="utf-8")
    assert violations(source, "errors") == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch",
        "import numpy as np",
        "def f():\n    import subprocess\n",
        "from torch.utils.data import DataLoader",
        "import yaml",
        "from ... import trainer",
        "from model_training_framework.trainer.state.manager import CheckpointManager",
        "from . import streams",
    ],
)
def test_checker_rejects_non_pure_imports(source):
    assert violations(source, "trainer.data.schedule") != []


@pytest.mark.parametrize(
    "source",
    [
        "import math, heapq",
        "from collections.abc import Mapping",
        "from ...errors import SchedulingError",
        "from model_training_framework.errors import ConfigError",
        "from . import orders",
        "from ..metrics import aggregation",
        "from ...config.naming import NamingStrategy",
        "from __future__ import annotations",
    ],
)
def test_checker_accepts_pure_imports(source):
    assert violations(source, "trainer.data.schedule") == []
