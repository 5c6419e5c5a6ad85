"""SLURMJobMonitor with scripted command output and an injected clock."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    assert slurm.calls == ["squeue", "scontrol 41", "scontrol 42", "sacct", "jobcomp"]


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
