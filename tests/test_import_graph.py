"""The package's layers: imports point one way, and no import cycle.

Layers, lowest first: the leaf modules (errors, io_utils, ...) -> config -> trainer -> experiment
-> launch -> cli. A module may import from its own layer and the layers below. The only
exception is a package's ``__init__.py`` kept as a public facade: it may name a higher layer
inside ``if TYPE_CHECKING:`` and inside its PEP 562 ``__getattr__`` (imported on first use).

The check reads every module with ``ast`` (nothing is imported), so it also sees imports inside
functions and ``importlib.import_module("model_training_framework....")`` calls.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "model_training_framework"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# first name below the package -> layer; every top-level module or package must be listed
LAYERS: dict[str, int] = {
    "errors": 0,
    "io_utils": 0,
    "process_utils": 0,
    "slurm_env": 0,
    "version": 0,
    "text": 0,
    "plotting": 0,
    "config": 1,
    "trainer": 2,
    "experiment": 3,
    "launch": 4,
    "cli": 5,
    # public facades only (lazy re-exports of launch/), above everything that holds code
    "slurm": 6,
    "runner": 6,
}
FACADE_LAYER = 7  # the package's own __init__.py
# packages of one layer that must not import each other (the launchers share launch/base.py)
SIBLINGS = [("launch.local", "launch.slurm")]


@dataclass(frozen=True)
class Import:
    """One import of a package module by ``importer`` (dotted names without the package)."""

    importer: str
    imported: str
    line: int
    at_import_time: bool  # a module-level statement, not inside a function or TYPE_CHECKING
    facade_exempt: bool  # inside TYPE_CHECKING or __getattr__ of an __init__.py


def module_name(path: Path, package_dir: Path) -> str:
    """``trainer/state/manager.py`` -> ``trainer.state.manager``; ``__init__.py`` -> its package."""
    parts = path.relative_to(package_dir).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = [PACKAGE, *importer.split(".")] if importer else [PACKAGE]
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(source: str, importer: str, *, is_package: bool) -> Iterator[Import]:
    """Every import of a package module in ``source`` (the module ``importer``)."""
    prefix = PACKAGE + "."

    def visit(node: ast.AST, in_function: bool, exempt: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            child_in_function, child_exempt = in_function, exempt
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                child_in_function = True
                child_exempt = exempt or (is_package and child.name == "__getattr__")
            elif isinstance(child, ast.If) and _is_type_checking(child):
                child_in_function = True  # not executed at import time
                child_exempt = exempt or is_package
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, importer, is_package)
                names = [f"{base}.{alias.name}" for alias in child.names]
            elif (
                isinstance(child, ast.Call)
                and ast.unparse(child.func).endswith("import_module")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                names = [child.args[0].value]
            for name in names:
                if name.startswith(prefix):
                    yield Import(
                        importer,
                        name[len(prefix) :],
                        child.lineno,
                        not child_in_function,
                        child_exempt,
                    )
            yield from visit(child, child_in_function, child_exempt)

    yield from visit(ast.parse(source), False, False)


def all_imports(package_dir: Path = PACKAGE_DIR) -> list[Import]:
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        name = module_name(path, package_dir)
        source = path.read_text(encoding="utf-8")
        found += imports_of(source, name, is_package=path.name == "__init__.py")
    return found


def layer_of(name: str) -> int:
    if not name:
        return FACADE_LAYER
    top = name.split(".")[0]
    if (
        top not in LAYERS
        and not (PACKAGE_DIR / top).exists()
        and not (PACKAGE_DIR / f"{top}.py").exists()
    ):
        return FACADE_LAYER  # a name defined in the package's own __init__.py
    if top not in LAYERS:
        raise AssertionError(
            f"{PACKAGE}.{top} has no layer: add it to LAYERS in tests/test_import_graph.py "
            "(and to the tree in docs/architecture.md)"
        )
    return LAYERS[top]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports that point to a higher layer (or to a sibling), facade exemptions aside."""
    bad = []
    for imp in imports:
        if imp.facade_exempt:
            continue
        if layer_of(imp.imported) > layer_of(imp.importer):
            bad.append(
                f"{imp.importer}:{imp.line} imports {imp.imported} (layer "
                f"{layer_of(imp.imported)} above {layer_of(imp.importer)})"
            )
        for one, other in SIBLINGS:
            for a, b in ((one, other), (other, one)):
                if _within(imp.importer, a) and _within(imp.imported, b):
                    bad.append(f"{imp.importer}:{imp.line} imports its sibling {imp.imported}")
    return bad


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def package_cycles(imports: list[Import]) -> list[list[str]]:
    """Cycles between the top-level packages and modules (any import, facades aside)."""
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if imp.facade_exempt or not imp.importer:
            continue
        a, b = imp.importer.split(".")[0], imp.imported.split(".")[0]
        if a != b:
            edges.setdefault(a, set()).add(b)
    return _cycles(edges)


def subpackage_cycles(imports: list[Import], package: str) -> list[list[str]]:
    """Cycles between the sub-packages of ``package`` (its own top-level modules aside)."""
    edges: dict[str, set[str]] = {}
    depth = package.count(".") + 1
    for imp in imports:
        if imp.facade_exempt or not (
            _within(imp.importer, package) and _within(imp.imported, package)
        ):
            continue
        a, b = imp.importer.split("."), imp.imported.split(".")
        if len(a) <= depth + 1 or len(b) <= depth + 1:
            continue  # the package's own modules orchestrate the sub-packages, or are shared
        if a[depth] != b[depth]:
            edges.setdefault(a[depth], set()).add(b[depth])
    return _cycles(edges)


def module_cycles(imports: list[Import], known: set[str]) -> list[list[str]]:
    """Cycles between modules through imports that run when a module is imported."""
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.at_import_time:
            continue
        target = imp.imported if imp.imported in known else imp.imported.rpartition(".")[0]
        if target in known and target != imp.importer:
            edges.setdefault(imp.importer, set()).add(target)
    return _cycles(edges)


def _known_modules(package_dir: Path) -> set[str]:
    return {module_name(path, package_dir) for path in package_dir.rglob("*.py")}


# ---------------------------------------------------------------------- the package itself
def test_every_top_level_module_has_a_layer():
    tops = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE_DIR.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert tops == set(LAYERS), f"not in LAYERS: {tops - set(LAYERS)}; gone: {set(LAYERS) - tops}"


def test_no_module_imports_from_a_higher_layer():
    assert layer_violations(all_imports()) == []


def test_no_import_cycle_between_packages():
    assert package_cycles(all_imports()) == []


@pytest.mark.parametrize("package", ["trainer", "launch"])
def test_no_import_cycle_between_sub_packages(package):
    assert subpackage_cycles(all_imports(), package) == []


def test_no_import_cycle_between_modules():
    assert module_cycles(all_imports(), _known_modules(PACKAGE_DIR)) == []


# ---------------------------------------------------------------------- the checker
def _imports(source: str, importer: str, *, is_package: bool = False) -> list[Import]:
    return list(imports_of(source, importer, is_package=is_package))


@pytest.mark.parametrize(
    ("source", "importer"),
    [
        ("from model_training_framework.trainer.config import GenericTrainerConfig", "config.grid"),
        ("from ..trainer import config", "config.grid"),
        ("def f():\n    from model_training_framework.launch.slurm import commands\n", "trainer.x"),
        (
            "import importlib\nimportlib.import_module('model_training_framework.cli.main')",
            "launch.a",
        ),
        ("from model_training_framework.launch.slurm.launcher import X", "launch.local"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..experiment import config\n",
            "trainer.run",
        ),
    ],
)
def test_checker_rejects_an_import_from_above(source, importer):
    assert layer_violations(_imports(source, importer)) != []


@pytest.mark.parametrize(
    ("source", "importer", "is_package"),
    [
        (
            "from model_training_framework.config.loading import ConfigModel",
            "trainer.config",
            False,
        ),
        ("from ..errors import ConfigError", "config.grid", False),
        ("from model_training_framework.launch.base import Launcher", "launch.local", False),
        (
            "if TYPE_CHECKING:\n    from ..experiment.config import ExperimentConfig\n",
            "config",
            True,
        ),
        (
            "def __getattr__(name):\n    from model_training_framework.experiment import config\n",
            "config",
            True,
        ),
    ],
)
def test_checker_accepts_lower_layers_and_facades(source, importer, is_package):
    assert layer_violations(_imports(source, importer, is_package=is_package)) == []


def test_checker_finds_a_cycle_between_packages():
    imports = _imports("from model_training_framework.trainer import x", "config.a")
    imports += _imports("from model_training_framework.config import y", "trainer.b")
    assert package_cycles(imports) == [["config", "trainer"]]


def test_checker_finds_a_cycle_between_sub_packages():
    imports = _imports("from model_training_framework.trainer.state.rng import x", "trainer.data.a")
    imports += _imports("from model_training_framework.trainer.data import b", "trainer.state.c")
    imports += _imports("from model_training_framework.trainer.config import y", "trainer.data.a")
    assert subpackage_cycles(imports, "trainer") == [["data", "state"]]


def test_checker_finds_a_cycle_between_modules_at_import_time_only():
    known = {"config.a", "config.b"}
    imports = _imports("from model_training_framework.config.b import X", "config.a")
    imports += _imports("def f():\n    from model_training_framework.config import a\n", "config.b")
    assert module_cycles(imports, known) == []
    imports += _imports("from model_training_framework.config.a import Y", "config.b")
    assert module_cycles(imports, known) == [["config.a", "config.b"]]
