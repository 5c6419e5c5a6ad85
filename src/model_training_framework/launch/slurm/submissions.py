"""Which Slurm job runs each experiment of a sweep, and stopping those jobs for good.

``mtf sweep --slurm`` records the job of each experiment it submits in
``<experiment dir>/submission.json``; ``mtf status`` shows it, a resubmission skips experiments
whose job is still queued or running, and ``mtf cancel`` stops those jobs.

NOTE [cancel for good]: plain ``scancel`` sends SIGTERM, which the trainer treats as a preemption
(SPEC section 4: Slurm sends the same signal when it preempts a job): it checkpoints and runs
``scontrol requeue``, so the job comes back. :func:`cancel_for_good` first turns the job's
requeue flag off (``scontrol update JobId=ID Requeue=0``); the trainer still checkpoints on the
SIGTERM, but Slurm refuses its requeue ("Requested operation is presently disabled"), so the job
ends CANCELLED and the run can be continued later from that checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from model_training_framework.io_utils import atomic_write_text
from model_training_framework.launch.slurm.commands import SlurmCommands
from model_training_framework.launch.slurm.monitor import SLURMJobMonitor
from model_training_framework.launch.slurm.parsing import ACTIVE_STATES, JobInfo

__all__ = [
    "SUBMISSION_RECORD",
    "active_jobs",
    "cancel_for_good",
    "read_submit_error",
    "read_submitted_job",
    "write_refusal",
    "write_submission",
]

SUBMISSION_RECORD = "submission.json"


def write_submission(experiment_dir: Path, job_id: str, script: Path) -> None:
    """Record that ``job_id`` (running ``script``) is the experiment's Slurm job."""
    record = {"job_id": job_id, "script": str(script)}
    atomic_write_text(experiment_dir / SUBMISSION_RECORD, json.dumps(record) + "\n")


def write_refusal(experiment_dir: Path, error: str, script: Path) -> None:
    """Record that sbatch refused the experiment's latest submission (``error``: its message).

    A job id recorded by an earlier submission is kept (with ``--resubmit-active`` that job may
    still be queued or running); without one the experiment has no job: ``mtf status`` shows it
    as ``not submitted``, and a later sweep submits it.
    """
    record = {"job_id": read_submitted_job(experiment_dir), "script": str(script), "error": error}
    atomic_write_text(experiment_dir / SUBMISSION_RECORD, json.dumps(record) + "\n")


def _read_record(experiment_dir: Path) -> dict:
    path = experiment_dir / SUBMISSION_RECORD
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def read_submitted_job(experiment_dir: Path) -> str | None:
    """The job id recorded for the experiment, or None when it was never submitted (or sbatch
    refused every submission of it)."""
    job_id = _read_record(experiment_dir).get("job_id")
    return None if job_id is None else str(job_id)


def read_submit_error(experiment_dir: Path) -> str | None:
    """sbatch's message when it refused the experiment's latest submission, else None."""
    error = _read_record(experiment_dir).get("error")
    return None if error is None else str(error)


def active_jobs(experiment_dirs: Sequence[Path], monitor: SLURMJobMonitor) -> dict[Path, JobInfo]:
    """The experiments whose recorded job Slurm still has queued or running.

    Args:
        experiment_dirs: experiment directories (those without a record are skipped).
        monitor: where job states come from (``squeue``, then ``scontrol`` and ``sacct``).

    Returns:
        Experiment directory -> the job's :class:`JobInfo`, for jobs in a non-terminal state
        (pending, running, requeued, suspended, ...); finished and unknown jobs are left out.

    Raises:
        LauncherError: a Slurm command failed (e.g. ``squeue`` is missing).
    """
    recorded = {path: read_submitted_job(path) for path in experiment_dirs}
    job_ids = sorted({job_id for job_id in recorded.values() if job_id is not None})
    if not job_ids:
        return {}
    states = monitor.get_job_states(job_ids)
    return {
        path: states[job_id]
        for path, job_id in recorded.items()
        if job_id is not None and states[job_id].state in ACTIVE_STATES
    }


def cancel_for_good(job_id: str, commands: SlurmCommands) -> None:
    """Cancel a job so that it stays cancelled (see NOTE [cancel for good]).

    Raises:
        LauncherError: ``scontrol`` or ``scancel`` failed (their stderr in the message).
    """
    commands.scontrol_disable_requeue(job_id)
    commands.scancel([job_id])
