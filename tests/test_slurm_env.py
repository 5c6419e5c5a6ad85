"""slurm_env: how this process names its own Slurm job to scontrol and scancel."""

from __future__ import annotations

import pytest

from model_training_framework.slurm_env import current_slurm_job_id


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SLURM_JOB_ID": "4242"}, "4242"),
        # the array task that carries the array's own id: a bare 4242 would name every task
        (
            {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"},
            "4242_1",
        ),
        (
            {"SLURM_JOB_ID": "4243", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "0"},
            "4242_0",
        ),
        ({"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"}, "4242"),  # incomplete: as is
        ({"SLURM_JOB_ID": "", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1"}, None),
    ],
)
def test_an_array_task_is_named_array_underscore_task(env, expected):
    assert current_slurm_job_id(env) == expected


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")

    assert current_slurm_job_id() == "7_3"
