"""Fixtures for the launcher tests, reusable by other test packages.

``slurm_cluster`` (session scope) starts a real single-node Slurm with ``start_slurm.sh`` next
to this file (needs root and Debian's ``slurm-wlm`` + ``munge``; see scripts/install_slurm.sh),
yields the environment for subprocess calls (``SLURM_CONF`` set), and stops the daemons at the
end. It only starts when a test asks for it, i.e. under ``-m slurm``; without slurmctld it skips.

Reuse from another test package::

    from tests.slurm.conftest import slurm_cluster  # noqa: F401  (or pytest_plugins)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_START_TIMEOUT_S = 120


@dataclass(frozen=True)
class SlurmCluster:
    """A running test Slurm: ``env`` for subprocess calls and the state directory."""

    env: dict[str, str]
    state_dir: Path

    @property
    def slurm_conf(self) -> str:
        return self.env["SLURM_CONF"]


def _slurm_available() -> str | None:
    if shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists():
        return "slurmctld is not installed (run scripts/install_slurm.sh)"
    if os.geteuid() != 0:
        return "the test Slurm needs root (it runs munged and slurmd as root)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Start slurmctld + slurmd on localhost for the session; yield their environment."""
    reason = _slurm_available()
    if reason:
        pytest.skip(reason)
    state_dir = Path(tempfile.mkdtemp(prefix="mtf-slurm-"))
    env = {**os.environ, "SLURM_TMP": str(state_dir)}
    started = subprocess.run(
        ["bash", str(HERE / "start_slurm.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT_S,
    )
    try:
        if started.returncode != 0:
            pytest.fail(
                f"start_slurm.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}"
            )
        yield SlurmCluster({**env, "SLURM_CONF": str(state_dir / "slurm.conf")}, state_dir)
    finally:
        subprocess.run(
            ["bash", str(HERE / "stop_slurm.sh")], env=env, capture_output=True, timeout=60
        )
        shutil.rmtree(state_dir, ignore_errors=True)


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
