"""Against a real single-node Slurm (``-m slurm``): job arrays, logs, SIGUSR1 + requeue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from model_training_framework.launch.slurm.parsing import JobState
from model_training_framework.slurm import (
    SlurmCommands,
    SLURMJobMonitor,
    SLURMLauncher,
    read_code_version,
)

pytestmark = pytest.mark.slurm

TINY_RESOURCES = {"mem": "50M", "time": "00:05:00", "signal_grace_s": 30}


def _experiments(names: list[str]) -> list[dict]:
    return [{"experiment_name": name, "slurm": dict(TINY_RESOURCES), "lr": 0.1} for name in names]


def _wait_for_file(path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s} s"
        time.sleep(0.2)
    return path.read_text()


def test_batch_of_two_runs_as_one_array_and_completes(slurm_cluster, git_project, tmp_path):
    commands = SlurmCommands(env=slurm_cluster.env)
    experiments_dir = tmp_path / "exp dir 'quoted'"
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=experiments_dir, commands=commands
    )

    result = launcher.submit_experiment_batch(
        _experiments(["lr_a", "lr_b"]), git_project / "train.py", max_concurrent=1
    )

    assert result.success_count == 2 and not result.failed
    assert len(result.array_job_ids) == 1
    assert result.job_ids == [f"{result.array_job_ids[0]}_0", f"{result.array_job_ids[0]}_1"]
    states = SLURMJobMonitor(commands).wait_for_jobs(
        result.array_job_ids, timeout_s=120, poll_interval_s=0.5
    )
    assert {info.state for info in states.values()} == {JobState.COMPLETED}
    assert sorted(states) == sorted(result.job_ids)
    for item in result.results:
        ran = item.experiment_dir / "ran_0"
        assert ran.read_text() == str(item.experiment_dir / "config.yaml")
        logs = list((item.experiment_dir / "logs").glob("slurm-*.out"))
        assert len(logs) == 1
        assert f"experiment {item.experiment_name} job {item.job_id} " in logs[0].read_text()
        assert Path(read_code_version(item.experiment_dir).code_dir).is_dir()


def test_usr1_to_batch_shell_checkpoints_requeues_and_reruns(slurm_cluster, git_project, tmp_path):
    env = {**slurm_cluster.env, "TINY_JOB_WAIT_FOR_SIGNAL": "1"}
    commands = SlurmCommands(env=env)
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "experiments", commands=commands
    )

    item = launcher.submit_single_experiment(
        _experiments(["preempt_me"])[0], git_project / "train.py"
    )
    assert _wait_for_file(item.experiment_dir / "ready", timeout_s=60) == item.job_id
    commands.scancel([item.job_id], signal="USR1", batch_only=True)

    states = SLURMJobMonitor(commands).wait_for_jobs(
        [item.job_id], timeout_s=120, poll_interval_s=0.5
    )
    info = states[item.job_id]
    assert info.state is JobState.COMPLETED and info.exit_code == 0
    assert info.restart_count == 1
    assert (item.experiment_dir / "got_usr1").read_text() == "0"
    assert (item.experiment_dir / "ran_1").exists()
    log = (item.experiment_dir / "logs" / f"slurm-{item.job_id}.out").read_text()
    assert "restart 0 " in log and "restart 1 " in log  # --open-mode=append kept the first run


def test_sbatch_refusal_is_reported_with_its_stderr(slurm_cluster, git_project, tmp_path):
    commands = SlurmCommands(env=slurm_cluster.env)
    launcher = SLURMLauncher(
        project_root=git_project, experiments_dir=tmp_path / "experiments", commands=commands
    )
    experiment = {
        "experiment_name": "too_big",
        "slurm": {**TINY_RESOURCES, "partition": "no_such_partition"},
    }

    result = launcher.submit_experiment_batch([experiment], git_project / "train.py")

    assert result.success_count == 0
    assert "invalid partition" in result.failed[0].error.lower()
    assert (result.failed[0].experiment_dir / "config.yaml").exists()


class _ForgetfulController(SlurmCommands):
    """squeue and scontrol as after MinJobAge: the controller no longer knows ended jobs."""

    def squeue(self) -> str:
        return ""

    def scontrol_show_job(self, job_id: str) -> str:
        return ""


def test_ended_array_tasks_are_found_once_the_controller_forgets_them(slurm_cluster, tmp_path):
    # sacct -c shows an array task only by its own numeric id; the jobcomp log names its task.
    commands = SlurmCommands(env=slurm_cluster.env)
    script = tmp_path / "task.sh"
    script.write_text("#!/bin/bash\nexit $SLURM_ARRAY_TASK_ID\n")
    array_id = commands.sbatch(script, ["--array=0-1", f"--output={tmp_path}/%A_%a.out"])
    SLURMJobMonitor(commands).wait_for_jobs([array_id], timeout_s=60, poll_interval_s=0.5)
    task_ids = [f"{array_id}_0", f"{array_id}_1"]
    source = "jobcomp" if commands.sacct(task_ids) is None else "sacct"  # no accounting here
    forgetful = SLURMJobMonitor(_ForgetfulController(env=slurm_cluster.env))

    deadline = time.monotonic() + 10  # the log record is written as the job ends
    while True:
        states = forgetful.get_job_states(task_ids)
        if all(info.state is not JobState.UNKNOWN for info in states.values()):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    assert (states[task_ids[0]].state, states[task_ids[0]].exit_code) == (JobState.COMPLETED, 0)
    assert (states[task_ids[1]].state, states[task_ids[1]].exit_code) == (JobState.FAILED, 1)
    assert {info.source for info in states.values()} == {source}


class _ForgetsTaskZero(SlurmCommands):
    """squeue and scontrol as once task 0 ended more than MinJobAge before its siblings."""

    def squeue(self) -> str:
        return "".join(line for line in super().squeue().splitlines(True) if "_0|" not in line)

    def scontrol_show_job(self, job_id: str) -> str:
        text = super().scontrol_show_job(job_id)
        return "".join(line for line in text.splitlines(True) if " ArrayTaskId=0 " not in line)


def _array_whose_first_task_fails(commands: SlurmCommands, tmp_path: Path) -> str:
    # Task 1 starts last, so it keeps the array's own job id (NOTE [array task ids]).
    script = tmp_path / "task.sh"
    script.write_text("#!/bin/bash\nexit $((1 - SLURM_ARRAY_TASK_ID))\n")
    return commands.sbatch(script, ["--array=0-1", f"--output={tmp_path}/%A_%a.out"])


def test_a_bare_array_id_means_every_task_once_the_controller_forgets(slurm_cluster, tmp_path):
    # sacct -c -j <array> prints one task's row by the array's id; the log names every task.
    commands = SlurmCommands(env=slurm_cluster.env)
    array_id = _array_whose_first_task_fails(commands, tmp_path)
    SLURMJobMonitor(commands).wait_for_jobs([array_id], timeout_s=60, poll_interval_s=0.5)
    forgetful = SLURMJobMonitor(_ForgetfulController(env=slurm_cluster.env))

    deadline = time.monotonic() + 10  # the log record is written as the job ends
    while len(states := forgetful.get_job_states([array_id])) < 2:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    assert {job_id: info.state for job_id, info in states.items()} == {
        f"{array_id}_0": JobState.FAILED,
        f"{array_id}_1": JobState.COMPLETED,
    }
    assert forgetful.overall_states(states, [array_id])[array_id].state is JobState.FAILED


def test_a_bare_array_id_includes_tasks_the_controller_forgot(slurm_cluster, tmp_path):
    commands = SlurmCommands(env=slurm_cluster.env)
    array_id = _array_whose_first_task_fails(commands, tmp_path)
    monitor = SLURMJobMonitor(_ForgetsTaskZero(env=slurm_cluster.env))

    deadline = time.monotonic() + 10  # the log record is written as the job ends
    while len(states := monitor.wait_for_jobs([array_id], 60, poll_interval_s=0.5)) < 2:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    assert {job_id: info.state for job_id, info in states.items()} == {
        f"{array_id}_0": JobState.FAILED,
        f"{array_id}_1": JobState.COMPLETED,
    }
    assert states[f"{array_id}_1"].source in {"squeue", "scontrol"}
    assert monitor.overall_states(states, [array_id])[array_id].state is JobState.FAILED
