"""``mtf sweep --slurm`` when sbatch refuses an array (``-m slurm``, real Slurm): more memory than
the test node has (``Requested node configuration is not available``).

``mtf`` runs as a subprocess, so what is counted is what a user sees on the terminal (its log
lines included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor

pytestmark = pytest.mark.slurm

TOO_MUCH = "100000G"  # more than the test node's RealMemory
FITS = "50M"
REFUSAL = "Requested node configuration is not available"


def _grid(project, mems: list[str], lrs: list[float]) -> Path:
    """One experiment per (mem, lr) pair; experiments with other ``mem`` go to other arrays."""
    config = project.write_config("base.yaml", training={"max_steps": 2})
    data = yaml.safe_load(config.read_text())
    data["slurm"] = {"mem": FITS, "time": "00:05:00", "signal_grace_s": 30}
    config.write_text(yaml.safe_dump(data))
    grid = {
        "name": "g",
        "base_config": "base.yaml",
        "linked": [{"slurm.mem": mems, "optimizer.lr": lrs}],
    }
    path = project.root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _mtf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**env, "PYTHONPATH": f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "model_training_framework.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _status(env: dict[str, str], sweep_dir: Path) -> dict[str, dict]:
    done = _mtf(env, "status", str(sweep_dir), "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


@pytest.fixture
def slurm_env(slurm_cluster, project):
    env = {**os.environ, **slurm_cluster.env}
    yield env
    commands = SlurmCommands(env=slurm_cluster.env)
    ids = [line.split("|")[0] for line in commands.squeue().splitlines() if line.strip()]
    if ids:
        commands.scancel(ids)
    SLURMJobMonitor(commands).wait_for_jobs(ids, timeout_s=60, poll_interval_s=0.5)


def test_refused_array_is_reported_once_with_its_experiments(project, slurm_env):
    grid = _grid(project, [TOO_MUCH, TOO_MUCH], [0.01, 0.02])

    done = _mtf(slurm_env, "sweep", str(grid), "--slurm")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count(REFUSAL) == 1, output
    assert "lr-0.01" in output and "lr-0.02" in output
    assert "sinfo" in output, output
