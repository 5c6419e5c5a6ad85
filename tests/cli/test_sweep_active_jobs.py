"""``mtf sweep --dry-run`` and ``--local`` leave alone the experiments whose Slurm job is queued
or running (stand-in ``squeue`` first on PATH; the real Slurm case is in
tests/cli/test_slurm_sweep_jobs.py).

A queued array task runs ``bash <experiment>/job.sbatch.sh`` with ``--config <experiment>/
config.yaml`` when it starts, so rewriting either file changes what that job runs: a dry run's
job script even ``cd``s into the live project instead of the code snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from model_training_framework.cli.main import main
from model_training_framework.launch.slurm.submissions import write_submission

ACTIVE, DONE = "tiny_lr-0.01", "tiny_lr-0.02"
_FILES = ("config.yaml", "job.sbatch.sh", "code_version.json")


def _grid(project) -> Path:
    project.write_config("base.yaml", training={"max_steps": 3})
    grid = {"name": "g", "base_config": "base.yaml", "parameters": {"optimizer.lr": [0.01, 0.02]}}
    path = project.root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    return path


def _fake_command(bin_dir: Path, name: str, body: str) -> None:
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def submitted_sweep(project, tmp_path, monkeypatch):
    """A sweep written by a dry run whose first experiment has a pending Slurm job (5_0, seen
    by a stand-in squeue) and whose second experiment's job (5_1) has finished; then the base
    config changes (max_steps 3 -> 4), so a rewrite would show."""
    grid = _grid(project)
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    sweep_dir = project.root / "experiments" / "grid"
    for name, job_id in [(ACTIVE, "5_0"), (DONE, "5_1")]:
        write_submission(sweep_dir / name, job_id, sweep_dir / name / "job.sbatch.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_command(bin_dir, "squeue", "echo '5_0|PENDING|Priority|g'")
    _fake_command(
        bin_dir, "scontrol", "echo 'scontrol: error: Invalid job id specified' >&2; exit 1"
    )
    _fake_command(bin_dir, "sacct", "exit 0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    project.write_config("base.yaml", training={"max_steps": 4})
    return grid, sweep_dir


def _contents(experiment_dir: Path) -> dict[str, bytes]:
    return {name: (experiment_dir / name).read_bytes() for name in _FILES}


def _max_steps(experiment_dir: Path) -> int:
    return yaml.safe_load((experiment_dir / "config.yaml").read_text())["training"]["max_steps"]


def _manifest_max_steps(sweep_dir: Path) -> dict[str, int]:
    manifest = yaml.safe_load((sweep_dir / "manifest.yaml").read_text())
    return {
        name: entry["config"]["training"]["max_steps"]
        for name, entry in manifest["experiments"].items()
    }


@pytest.mark.parametrize("mode", ["--dry-run", "--local"])
def test_an_experiment_whose_job_is_queued_is_left_as_it_is(submitted_sweep, capsys, mode):
    grid, sweep_dir = submitted_sweep
    before = _contents(sweep_dir / ACTIVE)
    capsys.readouterr()

    assert main(["sweep", str(grid), mode]) == 0

    out = capsys.readouterr().out
    assert f"{ACTIVE}: skipped, its job 5_0 is PENDING" in out, out
    assert f"mtf cancel {sweep_dir} {ACTIVE}" in out
    assert _contents(sweep_dir / ACTIVE) == before  # what the queued job will run
    assert _max_steps(sweep_dir / DONE) == 4  # the finished one is written as before
    # the manifest describes what each experiment runs: the skipped one keeps its old entry
    assert _manifest_max_steps(sweep_dir) == {ACTIVE: 3, DONE: 4}
    assert not (sweep_dir / ACTIVE / "local_run.json").exists()
    if mode == "--local":
        record = json.loads((sweep_dir / DONE / "local_run.json").read_text())
        assert record["exit_code"] == 0


def test_nothing_is_written_when_every_experiment_has_an_active_job(submitted_sweep, capsys):
    grid, sweep_dir = submitted_sweep
    write_submission(sweep_dir / DONE, "5_0", sweep_dir / DONE / "job.sbatch.sh")
    before = {name: _contents(sweep_dir / name) for name in (ACTIVE, DONE)}
    manifest = (sweep_dir / "manifest.yaml").read_bytes()
    capsys.readouterr()

    assert main(["sweep", str(grid), "--local"]) == 0

    assert "nothing to run: every experiment" in capsys.readouterr().out
    assert {name: _contents(sweep_dir / name) for name in (ACTIVE, DONE)} == before
    assert (sweep_dir / "manifest.yaml").read_bytes() == manifest


def test_without_squeue_a_dry_run_leaves_experiments_with_a_recorded_job_alone(
    submitted_sweep, tmp_path, monkeypatch, capsys
):
    grid, sweep_dir = submitted_sweep
    (sweep_dir / DONE / "submission.json").unlink()  # never submitted: written as before
    before = _contents(sweep_dir / ACTIVE)
    no_slurm = tmp_path / "no_slurm"
    no_slurm.mkdir()
    (no_slurm / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(no_slurm))
    capsys.readouterr()

    assert main(["sweep", str(grid), "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert f"{ACTIVE}: skipped, its Slurm job 5_0 may still be queued or running" in out, out
    assert "squeue is not available here" in out
    assert _contents(sweep_dir / ACTIVE) == before
    assert _max_steps(sweep_dir / DONE) == 4
    assert _manifest_max_steps(sweep_dir) == {ACTIVE: 3, DONE: 4}
