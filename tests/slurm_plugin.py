"""pytest plugin: a real single-node Slurm for any test package (registered in tests/conftest.py).

``slurm_cluster`` (session scope) starts slurmctld + slurmd on localhost with
``tests/slurm/start_slurm.sh`` (needs root and Debian's ``slurm-wlm`` + ``munge``; see
scripts/install_slurm.sh), yields a :class:`SlurmCluster` whose ``env`` (``SLURM_CONF`` set) is
meant for subprocess calls, e.g. ``SlurmCommands(env=slurm_cluster.env)``, and stops the daemons
at the end of the session. It starts only when a selected test asks for it (tests that use it
carry ``@pytest.mark.slurm``, deselected by default); without slurmctld or root it skips, unless
the environment sets ``MTF_REQUIRE_SLURM=1`` (``make test`` and CI do): then it fails, so a run
that promises the real-Slurm tests cannot pass by skipping them.

Only one test Slurm can run on a machine (fixed ports), so the fixture holds the machine lock
``/tmp/mtf-slurm.lock`` (tests/slurm_lock.py) from before it starts the daemons until they have
stopped: a second pytest session that needs a Slurm waits, saying so on the terminal, instead of
colliding. A session wrapped in ``flock /tmp/mtf-slurm.lock`` uses its wrapper's lock (NOTE [test
Slurm lock]).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.slurm_lock import acquire_machine_lock

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


def _report_on_terminal(config: pytest.Config) -> Callable[[str], None]:
    """Write a message where the user sees it, past pytest's output capture."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def report(message: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stderr.write(f"\n[slurm_cluster] {message}\n")
            sys.stderr.flush()

    return report


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[SlurmCluster]:
    """Start slurmctld + slurmd on localhost for the session; yield their environment.

    Holds the machine lock ``/tmp/mtf-slurm.lock`` while the daemons run (module docstring).
    """
    reason = _why_unavailable()
    if reason and os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the test Slurm cannot start: {reason}")
    if reason:
        pytest.skip(reason)
    lock = acquire_machine_lock(report=_report_on_terminal(request.config))
    try:
        with _running_slurm() as cluster:
            yield cluster
    finally:
        lock.release()


@contextlib.contextmanager
def _running_slurm() -> Iterator[SlurmCluster]:
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
