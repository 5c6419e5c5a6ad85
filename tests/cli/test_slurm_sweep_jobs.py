"""``mtf sweep --slurm`` and ``mtf cancel`` against a real Slurm (``-m slurm``), with real runs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from model_training_framework.cli.main import main
from model_training_framework.launch.slurm.parsing import ACTIVE_STATES, JobState
from model_training_framework.launch.slurm.submissions import cancel_for_good
from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor

pytestmark = pytest.mark.slurm

SLOW_STEP = """
import time

from {module} import training_step as _training_step


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    time.sleep(0.2)  # a run that is still training when the test acts on it
    return _training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
"""
_POLL_S = 0.2


def _slow_grid(project, lrs: list[float]) -> Path:
    """A sweep of long runs (100 epochs of 8 slow steps): one experiment per learning rate."""
    slow = f"slow_{project.module}"
    (project.root / f"{slow}.py").write_text(SLOW_STEP.format(module=project.module))
    config = project.write_config("base.yaml", training={"max_epochs": 100})
    data = yaml.safe_load(config.read_text())
    data["model"]["training_step"] = f"{slow}.training_step"
    data["checkpoint"]["save_every_n_steps"] = 4
    data["slurm"] = {"mem": "200M", "time": "00:05:00", "signal_grace_s": 30}
    config.write_text(yaml.safe_dump(data))
    grid = {"name": "g", "base_config": "base.yaml", "parameters": {"optimizer.lr": lrs}}
    path = project.root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _wait_for(predicate, what: str, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(_POLL_S)
    return value


def _status(run_dir: Path) -> str | None:
    path = run_dir / "status.json"
    return json.loads(path.read_text())["status"] if path.is_file() else None


def _job_id(experiment_dir: Path) -> str:
    return json.loads((experiment_dir / "submission.json").read_text())["job_id"]


@pytest.fixture
def slurm_env(slurm_cluster, monkeypatch):
    """``mtf`` and its jobs talk to the test Slurm; jobs a failed test left behind are cancelled
    (a job still running when the test Slurm stops would outlive it)."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.slurm_conf)
    commands = SlurmCommands(env=slurm_cluster.env)
    yield commands
    for job_id in _active(commands, _squeue_ids(commands)):
        cancel_for_good(job_id, commands)
    _wait_for(lambda: not _active(commands, _squeue_ids(commands)), "the end of every job")


def test_cancel_checkpoints_the_run_and_the_job_stays_cancelled(project, slurm_env, capsys):
    grid = _slow_grid(project, [0.01])
    assert main(["sweep", str(grid), "--slurm"]) == 0
    experiment_dir = project.root / "experiments" / "grid" / "tiny_lr-0.01"
    run_dir = project.run_dir("tiny_lr-0.01")
    job_id = _job_id(experiment_dir)
    _wait_for(lambda: (run_dir / "latest.ckpt").exists(), "a first checkpoint")
    capsys.readouterr()
    assert main(["status", "experiments/grid", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["status"], row["job_id"], row["job_state"]) == ("running", job_id, "RUNNING")
    assert row["epoch"] is not None and row["global_step"] >= 4  # where the running job is

    assert main(["cancel", "experiments/grid"]) == 0

    assert f"tiny_lr-0.01: job {job_id} (RUNNING) cancelled" in capsys.readouterr().out
    log = experiment_dir / "logs" / f"slurm-{job_id}.err"
    _wait_for(lambda: "preempted at step" in log.read_text(), "the run's end", timeout_s=60)
    monitor = SLURMJobMonitor(slurm_env)
    monitor.wait_for_jobs([job_id], timeout_s=60, poll_interval_s=0.5)
    time.sleep(2)  # a requeue would make the job PENDING again by now
    info = monitor.get_job_states([job_id])[job_id]
    assert (info.state, info.restart_count) == (JobState.CANCELLED, 0), info
    assert _status(run_dir) == "preempted"  # it checkpointed: a resubmission continues it
    assert "presently disabled" in log.read_text()  # the trainer's requeue was refused


def _active(commands: SlurmCommands, job_ids: list[str]) -> list[str]:
    monitor = SLURMJobMonitor(commands)
    # squeue lists a pending array under its bare id, which get_job_states expands to tasks
    states = monitor.overall_states(monitor.get_job_states(job_ids), job_ids)
    return [job_id for job_id in job_ids if states[job_id].state in ACTIVE_STATES]


def _squeue_ids(commands: SlurmCommands) -> list[str]:
    return sorted(line.split("|")[0] for line in commands.squeue().splitlines() if line.strip())


def test_resubmitting_a_sweep_skips_experiments_whose_job_is_queued_or_running(
    project, slurm_env, capsys
):
    grid = _slow_grid(project, [0.01, 0.02])
    assert main(["sweep", str(grid), "--slurm"]) == 0
    sweep_dir = project.root / "experiments" / "grid"
    first, second = (sweep_dir / name for name in ("tiny_lr-0.01", "tiny_lr-0.02"))
    jobs = {path: _job_id(path) for path in (first, second)}
    submitted = _squeue_ids(slurm_env)
    config_text = (first / "config.yaml").read_text()
    capsys.readouterr()

    assert main(["sweep", str(grid), "--slurm"]) == 0  # both still queued or running

    out = capsys.readouterr().out
    for path, job_id in jobs.items():
        assert f"{path.name}: skipped, its job {job_id} is " in out, out
        assert _job_id(path) == job_id  # the record still names the live job
    assert "nothing submitted" in out
    assert _squeue_ids(slurm_env) == submitted  # no second job
    assert (first / "config.yaml").read_text() == config_text

    # Once one experiment's job has ended, a resubmission submits that one only.
    assert main(["cancel", str(sweep_dir), "tiny_lr-0.01"]) == 0
    SLURMJobMonitor(slurm_env).wait_for_jobs([jobs[first]], timeout_s=60, poll_interval_s=0.5)
    capsys.readouterr()
    assert main(["sweep", str(grid), "--slurm"]) == 0
    out = capsys.readouterr().out
    assert f"tiny_lr-0.02: skipped, its job {jobs[second]} is " in out, out
    assert _job_id(first) != jobs[first] and _job_id(second) == jobs[second]
    assert f"tiny_lr-0.01: job {_job_id(first)}" in out

    # --resubmit-active submits even an experiment whose job runs (its run lock stops it).
    assert main(["sweep", str(grid), "--slurm", "--resubmit-active"]) == 0
    assert _job_id(second) != jobs[second]
    # (the fixture cancels the jobs still running)


def test_dry_run_and_local_leave_an_experiment_with_a_live_job_alone(project, slurm_env, capsys):
    grid = _slow_grid(project, [0.01])
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(project.root)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "project"]):
        subprocess.run([*git, *args], check=True)  # a git project: jobs run from a code copy
    assert main(["sweep", str(grid), "--slurm"]) == 0
    experiment_dir = project.root / "experiments" / "grid" / "tiny_lr-0.01"
    job_id = _job_id(experiment_dir)
    files = ("config.yaml", "job.sbatch.sh", "code_version.json")
    before = {name: (experiment_dir / name).read_bytes() for name in files}
    assert b"/.mtf_code/" in before["job.sbatch.sh"]  # a dry run's script would run the live tree
    base = project.root / "base.yaml"
    base.write_text(base.read_text().replace("max_epochs: 100", "max_epochs: 50"))
    submitted = _squeue_ids(slurm_env)
    capsys.readouterr()

    for mode in ("--dry-run", "--local"):
        assert main(["sweep", str(grid), mode]) == 0

        assert {name: (experiment_dir / name).read_bytes() for name in files} == before, mode
        out = capsys.readouterr().out
        assert f"tiny_lr-0.01: skipped, its job {job_id} is " in out, out
    assert not (experiment_dir / "local_run.json").exists()
    assert _squeue_ids(slurm_env) == submitted
    # (the fixture cancels the job)
