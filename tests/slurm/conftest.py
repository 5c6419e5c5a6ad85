"""Fixtures for the launcher tests.

The real-Slurm fixture ``slurm_cluster`` lives in ``tests/slurm_plugin.py`` (registered for the
whole suite by ``tests/conftest.py``), so one cluster serves every test package in a session.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def git_project(tmp_path: Path) -> Path:
    """A git repository with one commit holding ``train.py`` (a tiny stand-in training script)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(HERE / "data" / "tiny_job.py", project / "train.py")
    git = ["git", "-c", "user.name=mtf-test", "-c", "user.email=mtf@test", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return project


HOSTILE_NAMES = [
    "my dir",
    "it's",
    'say "hi"',
    "a;rm -rf x",
    "$(touch pwned)",
    "back\\slash",
    "tab\there",
]


@pytest.fixture(params=HOSTILE_NAMES)
def hostile_name(request: pytest.FixtureRequest) -> str:
    """Strings that break naive shell quoting: spaces, quotes, ';', $(...), backslashes, tabs."""
    return request.param
