"""summarize_job: one state for a whole job array from its tasks' states (PURE)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_training_framework.launch.slurm.job_summary import summarize_job
from model_training_framework.launch.slurm.parsing import JobInfo, JobState


def _task(task_idx: int, state: JobState, exit_code: int | None = None) -> JobInfo:
    return JobInfo(f"7_{task_idx}", state, state.value, exit_code, 0, name="sweep", source="squeue")


def test_every_task_completed_is_completed():
    summary = summarize_job("7", [_task(0, JobState.COMPLETED, 0), _task(1, JobState.COMPLETED, 0)])
    assert (summary.job_id, summary.state, summary.exit_code) == ("7", JobState.COMPLETED, 0)
    assert summary.raw_state == "2 tasks: 2 COMPLETED" and summary.name == "sweep"


def test_one_failed_task_makes_the_array_failed_with_its_exit_code():
    tasks = [
        _task(0, JobState.COMPLETED, 0),
        _task(1, JobState.FAILED, 3),
        _task(2, JobState.CANCELLED),
    ]
    summary = summarize_job("7", tasks)
    assert (summary.state, summary.exit_code) == (JobState.FAILED, 3)
    assert summary.raw_state == "3 tasks: 1 CANCELLED, 1 COMPLETED, 1 FAILED"


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([JobState.FAILED, JobState.RUNNING], JobState.RUNNING),  # not finished while one runs
        ([JobState.COMPLETED, JobState.PENDING], JobState.PENDING),
        ([JobState.PENDING, JobState.RUNNING], JobState.RUNNING),
        ([JobState.COMPLETED, JobState.UNKNOWN], JobState.UNKNOWN),  # a task not found
        ([JobState.COMPLETED, JobState.CANCELLED], JobState.CANCELLED),
        ([JobState.CANCELLED, JobState.FAILED], JobState.FAILED),
        ([JobState.FAILED, JobState.OUT_OF_MEMORY], JobState.OUT_OF_MEMORY),
        ([JobState.COMPLETED, JobState.TIMEOUT], JobState.TIMEOUT),
    ],
)
def test_the_most_telling_task_state_stands_for_the_array(states, expected):
    assert summarize_job("7", [_task(i, s) for i, s in enumerate(states)]).state is expected


def test_no_tasks_is_unknown():
    summary = summarize_job("7", [])
    assert summary.state is JobState.UNKNOWN and summary.raw_state == "no tasks"


def test_restart_count_is_the_highest_and_names_differing_are_dropped():
    tasks = [
        JobInfo("7_0", JobState.COMPLETED, "COMPLETED", name="a", restart_count=2, source="squeue"),
        JobInfo(
            "7_1", JobState.COMPLETED, "COMPLETED", name="b", restart_count=0, source="jobcomp"
        ),
    ]
    summary = summarize_job("7", tasks)
    assert (summary.restart_count, summary.name, summary.source) == (2, "", "jobcomp+squeue")


@given(st.lists(st.sampled_from(list(JobState)), min_size=1, max_size=6))
def test_the_array_is_finished_exactly_when_every_task_is(states):
    summary = summarize_job("7", [_task(i, s) for i, s in enumerate(states)])
    assert summary.state.is_terminal == all(state.is_terminal for state in states)
    assert summary.state in states
