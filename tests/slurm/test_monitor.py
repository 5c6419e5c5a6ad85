"""SLURMJobMonitor with scripted command output and an injected clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model_training_framework.launch.slurm.monitor import NOT_FOUND, JobWaitTimeout, SLURMJobMonitor
from model_training_framework.launch.slurm.parsing import JobState


@dataclass
class ScriptedSlurm:
    """Stands in for SlurmCommands: each squeue call returns the next scripted output."""

    squeue_outputs: list[str]
    scontrol: dict[str, str] = field(default_factory=dict)
    sacct_rows: str | None = None
    jobcomp_rows: str | None = None
    jobcomp_text: str | None = None
    calls: list[str] = field(default_factory=list)

    def squeue(self) -> str:
        self.calls.append("squeue")
        return (
            self.squeue_outputs.pop(0) if len(self.squeue_outputs) > 1 else self.squeue_outputs[0]
        )

    def scontrol_show_job(self, job_id: str) -> str:
        self.calls.append(f"scontrol {job_id}")
        return self.scontrol.get(job_id, "")

    def sacct(self, job_ids, *, jobcomp=False):
        self.calls.append("jobcomp" if jobcomp else "sacct")
        return self.jobcomp_rows if jobcomp else self.sacct_rows

    def jobcomp_log(self) -> str | None:
        self.calls.append("jobcomp log")
        return self.jobcomp_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _monitor(slurm: ScriptedSlurm, clock: FakeClock) -> SLURMJobMonitor:
    return SLURMJobMonitor(slurm, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_wait_polls_until_every_array_task_is_terminal():
    slurm = ScriptedSlurm(
        ["5_[1]|PENDING|JobArrayTaskLimit|a\n5_0|RUNNING|None|a\n", "5_1|RUNNING|None|a\n5_0|COMPLETED|None|a\n",
         "5_1|COMPLETED|None|a\n5_0|COMPLETED|None|a\n"],
        scontrol={"5": "JobId=6 ArrayJobId=5 ArrayTaskId=0 JobName=a JobState=COMPLETED Reason=None Restarts=2 ExitCode=0:0\n"},
    )  # fmt: skip
    clock = FakeClock()
    states = _monitor(slurm, clock).wait_for_jobs(["5"], timeout_s=100, poll_interval_s=10)
    assert sorted(states) == ["5_0", "5_1"]
    assert {info.state for info in states.values()} == {JobState.COMPLETED}
    assert states["5_0"].restart_count == 2 and states["5_0"].exit_code == 0
    assert states["5_1"].source == "squeue"
    assert clock.sleeps == [10, 10]


def test_wait_times_out_with_last_states():
    slurm = ScriptedSlurm(["9|PENDING|Resources|x\n"])
    clock = FakeClock()
    with pytest.raises(JobWaitTimeout, match="PENDING") as info:
        _monitor(slurm, clock).wait_for_jobs(["9"], timeout_s=25, poll_interval_s=10)
    assert info.value.states["9"].state is JobState.PENDING
    assert clock.sleeps == [10, 10, 5]


def test_finished_jobs_fall_back_to_sacct_then_jobcomp_then_unknown():
    slurm = ScriptedSlurm([""], sacct_rows=None, jobcomp_rows="41|j|FAILED|2:0\n")
    states = _monitor(slurm, FakeClock()).get_job_states(["41", "42"])
    assert states["41"].state is JobState.FAILED and states["41"].source == "jobcomp"
    assert states["42"].state is JobState.UNKNOWN and states["42"].raw_state == NOT_FOUND
    # then the log itself: a bare id's row in sacct -c may be one task of an array by that id
    assert slurm.calls == [
        "squeue",
        "scontrol 41",
        "scontrol 42",
        "sacct",
        "jobcomp",
        "jobcomp log",
    ]


# Captured from the test Slurm (22.05.8, jobcomp/filetxt): array 1's task 0 ran as job 4 and
# completed, task 1 ran as job 1 and exited 1, plain job 2 exited 2, job 3 was requeued
# (a PENDING record) and then cancelled.
JOBCOMP_LOG = (Path(__file__).parent / "data" / "jobcomp_filetxt.log").read_text()


def test_finished_array_tasks_are_found_in_the_jobcomp_log():
    # Once the controller has forgotten them (MinJobAge), squeue and scontrol know nothing;
    # `sacct -c -j 1_0,1_1` then prints only job 1's row, by its own id: "1", not "1_1" (it does
    # not read the log's ArrayJobId/ArrayTaskId), so neither task matched and both were UNKNOWN.
    slurm = ScriptedSlurm(
        [""], sacct_rows=None, jobcomp_rows="1|wrap|FAILED|1:0\n", jobcomp_text=JOBCOMP_LOG
    )
    states = _monitor(slurm, FakeClock()).get_job_states(["1_0", "1_1"])
    assert set(states) == {"1_0", "1_1"}
    assert states["1_0"].state is JobState.COMPLETED and states["1_0"].source == "jobcomp"
    assert states["1_1"].state is JobState.FAILED and states["1_1"].exit_code == 1
    assert slurm.calls[-3:] == ["sacct", "jobcomp", "jobcomp log"]


def _jobcomp_record(job_id: int, state: str, exit_code: int, task: int | None = None) -> str:
    array = f" ArrayJobId=1 ArrayTaskId={task}" if task is not None else ""
    return (
        f"JobId={job_id} UserId=root(0) Name=wrap JobState={state}{array} ExitCode={exit_code}:0\n"
    )


# Array 1: task 0 ran as job 2 and failed, task 1 (started last) kept the array's own id 1
# and completed, so `sacct -c -j 1` prints "1|wrap|COMPLETED|0:0": one task's row, by the
# array's id (checked on the test Slurm, 22.05.8).
ARRAY_1_LOG = _jobcomp_record(2, "FAILED", 1, task=0) + _jobcomp_record(1, "COMPLETED", 0, task=1)


def test_a_bare_array_id_is_every_task_not_the_row_sacct_c_prints_for_it():
    slurm = ScriptedSlurm(
        [""], jobcomp_rows="1|wrap|COMPLETED|0:0\n", jobcomp_text=ARRAY_1_LOG
    )  # the controller has forgotten the array (MinJobAge)
    monitor = _monitor(slurm, FakeClock())
    states = monitor.get_job_states(["1"])
    assert {job_id: info.state for job_id, info in states.items()} == {
        "1_0": JobState.FAILED,
        "1_1": JobState.COMPLETED,
    }
    overall = monitor.overall_states(states, ["1"])
    assert set(overall) == {"1"} and overall["1"].state is JobState.FAILED
    assert overall["1"].exit_code == 1


def test_a_bare_array_id_adds_the_tasks_the_controller_has_forgotten():
    # Task 0 ended long before task 1: squeue and scontrol no longer know it, only the log.
    task_1 = "JobId=1 ArrayJobId=1 ArrayTaskId=1 JobName=wrap JobState={} Restarts=0 ExitCode=0:0\n"
    slurm = ScriptedSlurm(
        ["1_1|RUNNING|None|wrap\n", "1_1|COMPLETED|None|wrap\n"],
        scontrol={"1": task_1.format("COMPLETED")},
        jobcomp_rows="1|wrap|COMPLETED|0:0\n",
        jobcomp_text=_jobcomp_record(2, "FAILED", 1, task=0),
    )
    clock = FakeClock()
    monitor = _monitor(slurm, clock)
    states = monitor.wait_for_jobs(["1"], timeout_s=100, poll_interval_s=10)
    assert clock.sleeps == [10]  # not finished while task 1 ran
    assert {job_id: info.state for job_id, info in states.items()} == {
        "1_0": JobState.FAILED,
        "1_1": JobState.COMPLETED,
    }
    assert states["1_1"].source == "scontrol" and states["1_0"].source == "jobcomp"
    assert monitor.overall_states(states, ["1"])["1"].state is JobState.FAILED


def test_the_controller_wins_over_older_log_records_of_the_same_task():
    # Whatever the log's last record of a task says (here the failed run before a requeue),
    # the controller's live state wins: the log only ever lags behind it.
    slurm = ScriptedSlurm(
        ["1_0|COMPLETED|None|wrap\n"], jobcomp_text=_jobcomp_record(2, "FAILED", 1, task=0)
    )
    states = _monitor(slurm, FakeClock()).get_job_states(["1"])
    assert states["1_0"].state is JobState.COMPLETED and states["1_0"].source != "jobcomp"


def test_overall_states_keep_plain_jobs_and_tasks_as_reported():
    slurm = ScriptedSlurm(["4|FAILED|None|a\n5_0|RUNNING|None|b\n5_1|PENDING|None|b\n"])
    monitor = _monitor(slurm, FakeClock())
    states = monitor.get_job_states(["4", "5_1", "5"])
    overall = monitor.overall_states(states, ["4", "5_1", "5"])
    assert overall["4"] == states["4"] and overall["5_1"] == states["5_1"]
    assert overall["5"].state is JobState.RUNNING and overall["5"].raw_state == (
        "2 tasks: 1 PENDING, 1 RUNNING"
    )


def test_sacct_rows_are_used_when_accounting_is_enabled():
    slurm = ScriptedSlurm(
        [""], sacct_rows="50|j|CANCELLED by 1000|0:15\n50.batch|batch|CANCELLED|0:15\n"
    )
    states = _monitor(slurm, FakeClock()).get_job_states(["50"])
    assert (
        states["50"].state is JobState.CANCELLED and states["50"].raw_state == "CANCELLED by 1000"
    )
    assert "jobcomp" not in slurm.calls


def test_summary_counts_states():
    slurm = ScriptedSlurm(["1|COMPLETED|None|a\n2|FAILED|None|b\n3|COMPLETED|None|c\n"])
    monitor = _monitor(slurm, FakeClock())
    assert monitor.summary(monitor.get_job_states(["1", "2", "3"])) == {"COMPLETED": 2, "FAILED": 1}


@pytest.mark.parametrize("comp_type", ["jobcomp/filetxt", "jobcomp/none"])
def test_jobcomp_log_reads_the_tail_of_the_filetxt_log_only(tmp_path, comp_type):
    from model_training_framework.launch.slurm.commands import SlurmCommands
    from model_training_framework.process_utils import CommandResult

    log = tmp_path / "jobcomp.txt"
    log.write_text("JobId=1 JobState=FAILED\nJobId=2 JobState=COMPLETED\n")
    config = f"JobCompLoc              = {log}\nJobCompType             = {comp_type}\n"

    class Config(SlurmCommands):
        def _run(self, args, *, check=True):
            assert list(args) == ["scontrol", "show", "config"]
            return CommandResult(tuple(args), 0, config, "")

    expected = log.read_text()[-30:] if comp_type == "jobcomp/filetxt" else None
    assert Config().jobcomp_log(max_bytes=30) == expected  # newest records only
    log.unlink()
    assert Config().jobcomp_log() is None  # unreadable here
