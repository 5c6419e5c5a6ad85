"""Every example runs, on the CPU, the way its docstring or README says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MTF = [sys.executable, "-m", "model_training_framework.cli.main"]


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env or dict(os.environ)
    )
    assert completed.returncode == 0, f"{args} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


def test_single_loader_trains_then_resumes_instead_of_starting_over(tmp_path):
    script = str(EXAMPLES / "single_loader.py")

    run_dir = tmp_path / "runs" / "single_loader"

    first = _run([sys.executable, script, "--epochs", "2"], tmp_path)
    checkpoints = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("*.ckpt")}
    second = _run([sys.executable, script, "--epochs", "2"], tmp_path)

    assert "completed: 2 epochs, 32 steps" in first.stdout
    assert "completed: 2 epochs, 32 steps" in second.stdout
    assert "resumed from" in second.stderr and "at epoch 2, step 32" in second.stderr
    assert (run_dir / "latest.ckpt").exists()
    # the rerun finished at once: it wrote no checkpoint and rewrote none
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("*.ckpt")} == checkpoints


@pytest.mark.slow
def test_weighted_multitask_samples_three_to_one_and_aggregates_validation(tmp_path):
    out = _run(
        [sys.executable, str(EXAMPLES / "weighted_multitask.py"), "--epochs", "1"], tmp_path
    ).stdout

    assert "batches per loader: {'reg': 30, 'cls': 10}" in out
    reg, cls = (float(x) for x in re.search(r"\(reg ([\d.]+), cls ([\d.]+)", out).groups())
    total = float(re.search(r"val/loss ([\d.]+)", out).group(1))
    assert total == pytest.approx((reg + cls) / 2, abs=2e-4)  # macro average of the two loaders


@pytest.fixture
def production(tmp_path: Path) -> Path:
    project = tmp_path / "production"
    shutil.copytree(
        EXAMPLES / "production",
        project,
        ignore=shutil.ignore_patterns("runs", "experiments", "__pycache__"),
    )
    return project


@pytest.mark.slow
def test_production_experiment_trains_with_mtf_train(production):
    _run([*MTF, "train", "experiment.yaml", "--set", "training.max_epochs=1"], production)

    status = yaml.safe_load((production / "runs" / "spirals" / "status.json").read_text())
    assert status["status"] == "completed"
    assert status["metrics"]["val/accuracy"] > 0.6


def test_production_sweep_dry_run_writes_four_job_scripts(production):
    out = _run([*MTF, "sweep", "grid.yaml", "--dry-run"], production).stdout

    scripts = sorted((production / "experiments" / "grid").glob("*/job.sbatch.sh"))
    assert len(scripts) == 4
    assert "4 experiment(s):" in out
    assert "#SBATCH --signal=B:USR1@60" in scripts[0].read_text()
    assert "#SBATCH --requeue" in scripts[0].read_text()


@pytest.mark.slurm
def test_production_sweep_runs_on_the_real_slurm_fixture(production, slurm_cluster):
    config = yaml.safe_load((production / "experiment.yaml").read_text())
    config["training"] = {"max_steps": 5}
    config["slurm"].update(mem="400M", cpus_per_task=1)  # what the single test node offers
    (production / "experiment.yaml").write_text(yaml.safe_dump(config))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(production)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "example"]):
        subprocess.run([*git, *args], check=True)

    _run([*MTF, "sweep", "grid.yaml", "--slurm"], production, env=slurm_cluster.env)

    job_ids = [
        yaml.safe_load(p.read_text())["job_id"]
        for p in (production / "experiments" / "grid").glob("*/submission.json")
    ]
    assert len(job_ids) == 4
    SLURMJobMonitor(SlurmCommands(env=slurm_cluster.env)).wait_for_jobs(job_ids, timeout_s=300)
    statuses = [
        yaml.safe_load(p.read_text())["status"] for p in (production / "runs").glob("*/status.json")
    ]
    assert statuses == ["completed"] * 4
