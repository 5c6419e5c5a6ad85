"""pytest plugin: a real single-node Slurm for any test package (registered in tests/conftest.py).

``slurm_cluster`` (session scope) starts slurmctld + slurmd on localhost with
``tests/slurm/start_slurm.sh`` (needs root and Debian's ``slurm-wlm`` + ``munge``; see
scripts/install_slurm.sh), yields a :class:`SlurmCluster` whose ``env`` (``SLURM_CONF`` set) is
meant for subprocess calls, e.g. ``SlurmCommands(env=slurm_cluster.env)``, and stops the daemons
at the end of the session. It starts only when a selected test asks for it (tests that use it
carry ``@pytest.mark.slurm``, deselected by default); without slurmctld or root it skips, unless
the environment sets ``MTF_REQUIRE_SLURM=1`` (``make test`` and CI do): then it fails, so a run
that promises the real-Slurm tests cannot pass by skipping them.
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

__all__ = ["SlurmCluster", "slurm_cluster"]

SCRIPTS_DIR = Path(__file__).resolve().parent / "slurm"
_START_TIMEOUT_S = 120
_STOP_TIMEOUT_S = 60
REQUIRE_ENV = "MTF_REQUIRE_SLURM"


@dataclass(frozen=True)
class SlurmCluster:
    """A running test Slurm.

    Attributes:
        env: environment for subprocess calls (``os.environ`` plus ``SLURM_CONF``, ``SLURM_TMP``).
        state_dir: where the daemons keep their config, state and logs (``log/*.log``).
    """

    env: dict[str, str]
    state_dir: Path

    @property
    def slurm_conf(self) -> str:
        """Path of the generated ``slurm.conf``."""
        return self.env["SLURM_CONF"]


def _why_unavailable() -> str | None:
    if shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists():
        return "slurmctld is not installed (run scripts/install_slurm.sh)"
    if os.geteuid() != 0:
        return "the test Slurm needs root (it runs munged and slurmd as root)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Start slurmctld + slurmd on localhost for the session; yield their environment."""
    reason = _why_unavailable()
    if reason and os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the test Slurm cannot start: {reason}")
    if reason:
        pytest.skip(reason)
    state_dir = Path(tempfile.mkdtemp(prefix="mtf-slurm-"))
    env = {**os.environ, "SLURM_TMP": str(state_dir)}
    started = subprocess.run(
        ["bash", str(SCRIPTS_DIR / "start_slurm.sh")],
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
            ["bash", str(SCRIPTS_DIR / "stop_slurm.sh")],
            env=env,
            capture_output=True,
            timeout=_STOP_TIMEOUT_S,
        )
        shutil.rmtree(state_dir, ignore_errors=True)
