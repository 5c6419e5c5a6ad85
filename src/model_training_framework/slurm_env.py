"""This process's Slurm job, named the way ``scontrol`` and ``scancel`` must be given it.

NOTE [array task ids]: every task of a job array has a job id of its own (``SLURM_JOB_ID``),
but one of them carries the array's id: Slurm keeps the array's record for the last task it
starts, whose ``SLURM_JOB_ID`` equals ``SLURM_ARRAY_JOB_ID``. ``scontrol`` and ``scancel`` read
a bare array id as the whole array, so ``scontrol requeue $SLURM_JOB_ID`` from that task
requeues every sibling, running or finished (checked on the test Slurm: ``scontrol requeue 1``
made both tasks of array 1 pending, each with ``Restarts=1``). An array task is therefore named
``<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>``, which means that task alone to every Slurm
command and is the id squeue, sacct and the launcher's ``submission.json`` show.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["current_slurm_job_id"]


def current_slurm_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """This process's Slurm job id, ``<array>_<task>`` for an array task (NOTE [array task ids]).

    Args:
        env: the environment to read (default ``os.environ``).

    Returns:
        ``"812_3"`` in task 3 of array 812, ``"811"`` in a plain job, None outside Slurm
        (``SLURM_JOB_ID`` unset or empty).

    Example:
        >>> current_slurm_job_id({"SLURM_JOB_ID": "812", "SLURM_ARRAY_JOB_ID": "812",
        ...                       "SLURM_ARRAY_TASK_ID": "3"})
        '812_3'
    """
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return None
    array_job_id = env.get("SLURM_ARRAY_JOB_ID")
    array_task_id = env.get("SLURM_ARRAY_TASK_ID")
    if array_job_id and array_task_id:
        return f"{array_job_id}_{array_task_id}"
    return job_id
