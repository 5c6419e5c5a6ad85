"""End to end on a real Slurm (``-m slurm``): a job array of real training runs, one preempted.

The array runs ``scripts/train_job.py`` (GenericTrainer on a tiny model) for two experiments
from a code snapshot of a throwaway git project. Task 0 gets SIGUSR1 mid-training: the trainer
checkpoints, requeues the job (``scontrol requeue``), the job restarts (SLURM_RESTART_COUNT=1),
resumes from its latest checkpoint and finishes. Its final weights must equal, bit for bit,
those of the same experiment run uninterrupted by the LocalLauncher.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from model_training_framework.launch.local import LocalLauncher
from model_training_framework.launch.slurm.parsing import JobState, parse_scontrol_jobs
from model_training_framework.slurm import SlurmCommands, SLURMJobMonitor, SLURMLauncher

pytestmark = pytest.mark.slurm

JOB_SCRIPT = Path(__file__).resolve().parent / "scripts" / "train_job.py"
STARTED = re.compile(r"\[train_job\] training started: global_step=(\d+) restart=(\d+)")
REPORT_EVERY_N_STEPS = 5
SIGNAL_AFTER = re.compile(rf"\[train_job\] at global_step={REPORT_EVERY_N_STEPS} restart=0")
STOPPED = re.compile(r"\[train_job\] status=(\w+) global_step=(\d+)")
# 2 loaders x 32 samples / batch 4, round robin, 2 epochs
TOTAL_STEPS = 32
STEP_SLEEP_S = 0.15  # slow enough to be signalled mid-training; changes no numbers
SLURM_RESOURCES = {"mem": "200M", "time": "00:05:00", "signal_grace_s": 30}
_POLL_S = 0.1


def _git_project(root: Path) -> Path:
    """A git repository with one commit holding ``train_job.py``."""
    root.mkdir()
    shutil.copy(JOB_SCRIPT, root / "train_job.py")
    git = ["git", "-c", "user.name=mtf-test", "-c", "user.email=mtf@test", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train_job.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "tiny training job"], check=True)
    return root


def _experiment(name: str, seed: int, checkpoint_root: Path, step_sleep_s: float) -> dict:
    return {
        "experiment_name": name,
        "seed": seed,
        "train_loader_config": {"sampling_strategy": "round_robin", "dataloader_names": ["a", "b"]},
        # absolute: the job runs from the code snapshot, not from the test's directory
        "checkpoint": {"root_dir": str(checkpoint_root.resolve()), "save_every_n_steps": 8},
        "logging": {"progress_bar": False},
        "optimizer": {"lr": 0.01},
        "training": {"max_epochs": 2},
        "slurm": dict(SLURM_RESOURCES),
        "custom_params": {
            "step_sleep_s": step_sleep_s,
            "num_samples": 32,
            "report_every_n_steps": REPORT_EVERY_N_STEPS,
        },
    }


def _wait_for_match(log: Path, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
    """Poll ``log`` until ``pattern`` matches its text (the job writes it while it runs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text() if log.exists() else ""
        match = pattern.search(text)
        if match:
            return match
        if time.monotonic() > deadline:
            err = log.with_suffix(".err")
            pytest.fail(
                f"{pattern.pattern!r} not in {log} after {timeout_s} s; log:\n{text}\n"
                f"stderr:\n{err.read_text() if err.exists() else '(none)'}"
            )
        time.sleep(_POLL_S)


def _final(run_dir: Path) -> dict:
    return torch.load(run_dir / "final.pt", weights_only=False)


def _assert_same_run(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["global_step"] == uninterrupted["global_step"] == TOTAL_STEPS
    assert resumed["fingerprint"] == uninterrupted["fingerprint"]  # same batches, none twice
    assert resumed["model"].keys() == uninterrupted["model"].keys()
    for key, tensor in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], tensor), f"model weight {key} differs"
    for param_idx, state in uninterrupted["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(resumed["optimizer"]["state"][param_idx][key], value), (
                f"optimizer state {param_idx}/{key} differs"
            )


def test_preempted_array_task_requeues_resumes_and_matches_uninterrupted_run(
    slurm_cluster, tmp_path
):
    project = _git_project(tmp_path / "project")
    names_seeds = [("e2e_preempted", 11), ("e2e_untouched", 12)]
    commands = SlurmCommands(env=slurm_cluster.env)
    launcher = SLURMLauncher(
        project_root=project, experiments_dir=tmp_path / "slurm_experiments", commands=commands
    )
    slurm_root = tmp_path / "slurm_runs"
    batch = launcher.submit_experiment_batch(
        [_experiment(name, seed, slurm_root, STEP_SLEEP_S) for name, seed in names_seeds],
        project / "train_job.py",
    )
    assert batch.success_count == 2 and len(batch.array_job_ids) == 1, batch.failed
    target = batch.results[0]
    log = target.experiment_dir / "logs" / f"slurm-{target.job_id}.out"

    _wait_for_match(log, SIGNAL_AFTER, timeout_s=60)
    commands.scancel([target.job_id], signal="USR1", batch_only=True)
    # The same experiments, uninterrupted and without Slurm (runs while task 0 is requeued).
    local_root = tmp_path / "local_runs"
    local = LocalLauncher(project, tmp_path / "local_experiments").submit_experiment_batch(
        [_experiment(name, seed, local_root, 0.0) for name, seed in names_seeds],
        project / "train_job.py",
        max_concurrent=2,
    )
    states = SLURMJobMonitor(commands).wait_for_jobs(
        batch.array_job_ids, timeout_s=120, poll_interval_s=0.5
    )

    assert local.success_count == 2, [(r.experiment_name, r.error) for r in local.failed]
    assert {info.job_id: info.state for info in states.values()} == {
        job_id: JobState.COMPLETED for job_id in batch.job_ids
    }
    assert states[target.job_id].restart_count == 1
    assert states[batch.job_ids[1]].restart_count == 0
    text = log.read_text()
    starts = [(int(step), int(restart)) for step, restart in STARTED.findall(text)]
    stops = [(status, int(step)) for status, step in STOPPED.findall(text)]
    assert "restart 0 " in text and "restart 1 " in text  # launcher's line, log appended
    # Preempted mid-training at step k: the requeued run resumed from the checkpoint at k.
    assert len(starts) == 2 and starts[0] == (0, 0) and starts[1][1] == 1, text
    preempted_step = starts[1][0]
    assert REPORT_EVERY_N_STEPS <= preempted_step < TOTAL_STEPS, text
    # The requeue ends the first run with Slurm's SIGTERM, which may land before it prints.
    assert stops[:-1] in ([], [("preempted", preempted_step)]), text
    assert stops[-1] == ("completed", TOTAL_STEPS), text
    untouched = batch.results[1].experiment_dir / "logs" / f"slurm-{batch.job_ids[1]}.out"
    assert STARTED.findall(untouched.read_text()) == [("0", "0")]
    assert STOPPED.findall(untouched.read_text()) == [("completed", str(TOTAL_STEPS))]
    for name, _ in names_seeds:
        _assert_same_run(_final(slurm_root / name), _final(local_root / name))
    first, second = (_final(local_root / name)["model"] for name, _ in names_seeds)
    assert not all(torch.equal(first[key], second[key]) for key in first)  # seeds matter


def test_scancel_of_a_job_with_loader_workers_checkpoints_as_a_preemption(slurm_cluster, tmp_path):
    """scancel without --signal: Slurm sends SIGTERM to every process of the job, DataLoader
    workers included. The workers ignore it and the trainer checkpoints, ending "preempted"."""
    project = _git_project(tmp_path / "project")
    commands = SlurmCommands(env=slurm_cluster.env)
    launcher = SLURMLauncher(
        project_root=project, experiments_dir=tmp_path / "slurm_experiments", commands=commands
    )
    slurm_root = tmp_path / "slurm_runs"
    experiment = _experiment("e2e_scancel", 13, slurm_root, STEP_SLEEP_S)
    experiment["custom_params"]["num_workers"] = 2
    experiment["preemption"] = {"requeue_job": False}  # a cancelled job is not requeued
    batch = launcher.submit_experiment_batch([experiment], project / "train_job.py")
    assert batch.success_count == 1, batch.failed
    target = batch.results[0]
    log = target.experiment_dir / "logs" / f"slurm-{target.job_id}.out"

    _wait_for_match(log, SIGNAL_AFTER, timeout_s=60)
    commands.scancel([target.job_id])
    stopped = _wait_for_match(log, STOPPED, timeout_s=30)
    SLURMJobMonitor(commands).wait_for_jobs([target.job_id], timeout_s=60, poll_interval_s=0.5)

    text = log.read_text() + log.with_suffix(".err").read_text()
    assert "killed by signal" not in text, text
    status, step = stopped.group(1), int(stopped.group(2))
    assert status == "preempted" and REPORT_EVERY_N_STEPS <= step < TOTAL_STEPS, text
    latest = torch.load(slurm_root / "e2e_scancel" / "latest.ckpt", weights_only=True)
    assert latest["global_step"] == step


def _task_with_the_array_id(commands: SlurmCommands, array_id: str) -> str:
    """The task of a running array whose own job id is the array's id (Slurm gives it to the
    last task to start): its ``SLURM_JOB_ID`` equals ``SLURM_ARRAY_JOB_ID``."""
    text = commands.scontrol_show_job(array_id)
    match = re.search(rf"^JobId={array_id} ArrayJobId={array_id} ArrayTaskId=(\d+) ", text, re.M)
    assert match, f"no task of array {array_id} holds its id:\n{text}"
    return match.group(1)


def test_preempting_the_task_that_holds_the_array_id_requeues_that_task_only(
    slurm_cluster, tmp_path
):
    """`scontrol requeue <array id>` requeues every task of the array; the task whose
    SLURM_JOB_ID is the array id must requeue `<array>_<task>`, and its sibling keeps running."""
    project = _git_project(tmp_path / "project")
    commands = SlurmCommands(env=slurm_cluster.env)
    launcher = SLURMLauncher(
        project_root=project, experiments_dir=tmp_path / "slurm_experiments", commands=commands
    )
    experiments = [
        _experiment(name, seed, tmp_path / "runs", STEP_SLEEP_S)
        for name, seed in [("array_id_a", 21), ("array_id_b", 22)]
    ]
    for experiment in experiments:  # 2 x 2 x 200 / 4 = 200 steps: both outlive the test
        experiment["custom_params"]["num_samples"] = 200
    batch = launcher.submit_experiment_batch(experiments, project / "train_job.py")
    assert batch.success_count == 2 and len(batch.array_job_ids) == 1, batch.failed
    (array_id,) = batch.array_job_ids
    logs = {
        result.job_id: result.experiment_dir / "logs" / f"slurm-{result.job_id}.out"
        for result in batch.results
    }
    try:
        for log in logs.values():
            _wait_for_match(log, SIGNAL_AFTER, timeout_s=60)
        target = f"{array_id}_{_task_with_the_array_id(commands, array_id)}"
        (sibling,) = set(logs) - {target}

        commands.scancel([target], signal="USR1", batch_only=True)

        restarted = re.compile(r"\[train_job\] training started: global_step=\d+ restart=1")
        _wait_for_match(logs[target], restarted, timeout_s=90)
        tasks = {
            info.job_id: info for info in parse_scontrol_jobs(commands.scontrol_show_job(array_id))
        }
        assert tasks[target].restart_count == 1, tasks
        assert (tasks[sibling].state, tasks[sibling].restart_count) == (JobState.RUNNING, 0), tasks
        assert STARTED.findall(logs[sibling].read_text()) == [("0", "0")]
        assert STOPPED.findall(logs[sibling].read_text()) == []
    finally:
        for job_id in logs:
            commands.scontrol_disable_requeue(job_id)
        commands.scancel(list(logs))
        SLURMJobMonitor(commands).wait_for_jobs(list(logs), timeout_s=60, poll_interval_s=0.5)
