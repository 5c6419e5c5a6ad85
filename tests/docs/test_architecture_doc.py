"""docs/architecture.md's package tree matches the package: every listed path exists, and every
module and package is listed (an ``__init__.py`` is implied by its listed folder)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
PACKAGE_DIR = REPO / "src" / "model_training_framework"
# a tree line: indentation, then a name ending in "/" (a folder) or a file suffix, maybe "*"
ENTRY = re.compile(r"^(?P<indent> *)(?P<name>[\w.]+(?:/[\w.]+)*/|[\w.]+\.(?:py|sh))\*?(?:\s|$)")
MAX_NAME_INDENT = 24  # deeper lines continue the previous line's description


def tree_block(text: str) -> list[str]:
    section = text.split("## Package tree", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def listed_paths(lines: list[str]) -> set[Path]:
    """Absolute paths of the tree's entries (2 spaces of indentation per level)."""
    paths: set[Path] = set()
    parents: list[Path] = []
    for line in lines:
        match = ENTRY.match(line)
        if match is None or len(match["indent"]) > MAX_NAME_INDENT:
            continue
        depth = len(match["indent"]) // 2
        name = match["name"]
        base = parents[depth - 1] if depth else REPO / ("src" if name.startswith("src/") else "")
        if not depth and name.startswith("src/"):
            name = name.removeprefix("src/")
        path = base / name.rstrip("/")
        paths.add(path)
        if name.endswith("/"):
            del parents[depth:]
            parents.append(path)
    return paths


def package_paths() -> set[Path]:
    """Every module (but ``__init__.py``) and package folder of the package."""
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        found.add(path.parent)
        if path.name != "__init__.py":
            found.add(path)
    return found


def test_the_tree_parser_reads_nesting_and_continuations():
    lines = [
        "src/model_training_framework/",
        "  trainer/                 layer 2",
        "    step.py                one window, ending in",
        "                           the optimizer step.py (a continuation, not an entry)",
        "    data/                  which batch",
        "      schedule.py*         PURE",
        "  cli/                     layer 5",
    ]
    root = REPO / "src" / "model_training_framework"
    assert listed_paths(lines) == {
        root,
        root / "trainer",
        root / "trainer" / "step.py",
        root / "trainer" / "data",
        root / "trainer" / "data" / "schedule.py",
        root / "cli",
    }


def test_every_path_in_the_tree_exists():
    missing = sorted(
        str(path.relative_to(REPO))
        for path in listed_paths(tree_block(DOC.read_text(encoding="utf-8")))
        if not path.exists()
    )
    assert not missing, f"docs/architecture.md lists paths that do not exist: {missing}"


def test_every_module_is_in_the_tree():
    listed = listed_paths(tree_block(DOC.read_text(encoding="utf-8")))
    unlisted = sorted(str(path.relative_to(PACKAGE_DIR)) for path in package_paths() - listed)
    assert not unlisted, (
        f"add these to the package tree in docs/architecture.md (one line each, under their "
        f"folder, with what they hold): {unlisted}"
    )
