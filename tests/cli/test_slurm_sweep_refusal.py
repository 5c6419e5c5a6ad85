"""``mtf sweep --slurm`` when sbatch refuses an array (``-m slurm``, real Slurm): more memory than
the test node has (``Requested node configuration is not available``).

``mtf`` runs as a subprocess, so what is counted is what a user sees on the terminal (its log
lines included).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from model_training_framework.errors import LauncherError
from model_training_framework.launch.slurm.parsing import ACTIVE_STATES
from model_training_framework.launch.slurm.submissions import cancel_for_good
from model_training_framework.slurm import SlurmCommands

pytestmark = pytest.mark.slurm

TOO_MUCH = "100000G"  # more than the test node's RealMemory
FITS = "50M"
REFUSAL = "Requested node configuration is not available"


def _grid(project, mem: str, lrs: list[float], mems: list[str] | None = None) -> Path:
    """One experiment per learning rate, asking for ``mem`` (the base config's, so not in the
    names) or, with ``mems``, one each: experiments with another ``mem`` go to another array."""
    config = project.write_config("base.yaml", training={"max_steps": 2})
    data = yaml.safe_load(config.read_text())
    data["slurm"] = {"mem": mem, "time": "00:05:00", "signal_grace_s": 30}
    config.write_text(yaml.safe_dump(data))
    grid: dict = {"name": "g", "base_config": "base.yaml"}
    if mems is None:
        grid["parameters"] = {"optimizer.lr": lrs}
    else:
        grid["linked"] = [{"slurm.mem": mems, "optimizer.lr": lrs}]
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


def _active_ids(commands: SlurmCommands) -> list[str]:
    """Queued or running jobs (a refused array stays in squeue as FAILED for MinJobAge)."""
    active = {state.value for state in ACTIVE_STATES}
    rows = [line.split("|") for line in commands.squeue().splitlines() if line.strip()]
    return [row[0] for row in rows if row[1] in active]


@pytest.fixture
def slurm_env(slurm_cluster, project):
    """The environment of ``mtf`` (the test Slurm); jobs left queued or running are cancelled."""
    yield {**os.environ, **slurm_cluster.env}
    commands = SlurmCommands(env=slurm_cluster.env)
    deadline = time.monotonic() + 60
    while ids := _active_ids(commands):
        assert time.monotonic() < deadline, f"jobs did not end: {commands.squeue()}"
        for job_id in ids:  # plain scancel would be a preemption: the run requeues itself
            with contextlib.suppress(LauncherError):  # it ended in between
                cancel_for_good(job_id, commands)
        time.sleep(0.5)


def test_refused_array_is_reported_once_with_its_experiments(project, slurm_env):
    grid = _grid(project, TOO_MUCH, [0.01, 0.02])

    done = _mtf(slurm_env, "sweep", str(grid), "--slurm")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count(REFUSAL) == 1, output
    assert "lr-0.01" in output and "lr-0.02" in output
    assert "sinfo" in output, output


def _submitted(sweep_dir: Path) -> dict[str, str | None]:
    """Experiment name -> the job id its submission.json records (None: no job)."""
    records = {}
    for path in sorted(sweep_dir.glob("*/config.yaml")):
        record = path.parent / "submission.json"
        job = json.loads(record.read_text())["job_id"] if record.is_file() else None
        records[path.parent.name] = job
    return records


def test_refused_experiments_are_not_submitted_in_status_and_a_rerun_submits_them(
    project, slurm_env
):
    sweep_dir = project.root / "experiments" / "grid"
    grid = _grid(project, TOO_MUCH, [0.01, 0.02])
    first = _mtf(slurm_env, "sweep", str(grid), "--slurm")
    assert first.returncode == 1, first.stdout + first.stderr

    rows = _status(slurm_env, sweep_dir)
    assert len(rows) == 2
    assert {row["status"] for row in rows.values()} == {"not submitted"}, rows
    assert {row["job_id"] for row in rows.values()} == {None}
    assert all(REFUSAL in row["submit_error"] for row in rows.values()), rows
    table = _mtf(slurm_env, "status", str(sweep_dir)).stdout
    assert "pending" not in table and table.count("not submitted") == 2, table

    grid = _grid(project, FITS, [0.01, 0.02])  # the same names
    done = _mtf(slurm_env, "sweep", str(grid), "--slurm")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" not in done.stdout
    assert all(job is not None for job in _submitted(sweep_dir).values())
    rows = _status(slurm_env, sweep_dir)
    assert "not submitted" not in {row["status"] for row in rows.values()}, rows
    assert {row["submit_error"] for row in rows.values()} == {None}


def test_one_refused_array_of_two_leaves_the_other_submitted_and_recorded(project, slurm_env):
    sweep_dir = project.root / "experiments" / "grid"
    grid = _grid(project, FITS, [0.01, 0.02, 0.03], [FITS, TOO_MUCH, TOO_MUCH])

    done = _mtf(slurm_env, "sweep", str(grid), "--slurm")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count(REFUSAL) == 1, output
    jobs = _submitted(sweep_dir)
    fits = next(name for name in jobs if "lr-0.01" in name)
    assert jobs[fits] is not None and f"{fits}: job {jobs[fits]}" in done.stdout
    rows = _status(slurm_env, sweep_dir)
    assert rows[fits]["job_id"] == jobs[fits] and rows[fits]["status"] != "not submitted"
    refused = sorted(name for name in rows if name != fits)
    assert [rows[name]["status"] for name in refused] == ["not submitted"] * 2, rows
    assert all(REFUSAL in rows[name]["submit_error"] for name in refused)
    assert rows[fits]["submit_error"] is None
    manifest = yaml.safe_load((sweep_dir / "manifest.yaml").read_text())
    assert sorted(manifest["experiments"]) == sorted(rows)
