"""PURE: one state for a whole job array, from the states of its tasks.

A bare array id (``"812"``) means every task of the array. The array is finished only when every
task is, and its state is the most telling of its tasks' states:

- while any task is not finished: the most advanced unfinished state (RUNNING before PENDING),
  or UNKNOWN when a task was found nowhere;
- once all are finished: the worst ending (NODE_FAIL, BOOT_FAIL, OUT_OF_MEMORY, FAILED, DEADLINE,
  TIMEOUT, PREEMPTED, CANCELLED, REVOKED), COMPLETED only when every task completed.

Example:
    >>> tasks = [JobInfo("812_0", JobState.COMPLETED, "COMPLETED", 0),
    ...          JobInfo("812_1", JobState.FAILED, "FAILED", 2)]
    >>> summary = summarize_job("812", tasks)
    >>> summary.state, summary.exit_code, summary.raw_state
    (<JobState.FAILED: 'FAILED'>, 2, '2 tasks: 1 COMPLETED, 1 FAILED')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from model_training_framework.launch.slurm.parsing import JobInfo, JobState

__all__ = ["summarize_job"]

# Worst ending first: the first state any task is in stands for the finished array.
_ENDINGS = (
    JobState.NODE_FAIL,
    JobState.BOOT_FAIL,
    JobState.OUT_OF_MEMORY,
    JobState.FAILED,
    JobState.DEADLINE,
    JobState.TIMEOUT,
    JobState.PREEMPTED,
    JobState.CANCELLED,
    JobState.REVOKED,
    JobState.COMPLETED,
)
# Most advanced first: the first state any task is in stands for the unfinished array.
_UNFINISHED = (
    JobState.RUNNING,
    JobState.COMPLETING,
    JobState.STAGE_OUT,
    JobState.SIGNALING,
    JobState.RESIZING,
    JobState.CONFIGURING,
    JobState.SUSPENDED,
    JobState.STOPPED,
    JobState.REQUEUED,
    JobState.REQUEUE_FED,
    JobState.REQUEUE_HOLD,
    JobState.SPECIAL_EXIT,
    JobState.RESV_DEL_HOLD,
    JobState.PENDING,
    JobState.UNKNOWN,
)


def summarize_job(job_id: str, tasks: Iterable[JobInfo]) -> JobInfo:
    """The state of job ``job_id`` as a whole, from the states of its tasks.

    Args:
        job_id: the id the summary is reported under (``"812"``).
        tasks: what Slurm says about each task.

    Returns:
        A :class:`JobInfo` whose ``state`` follows the module's rules; ``exit_code``,
        ``exit_signal`` and ``reason`` are those of the first task (by id) in that state,
        ``raw_state`` counts the tasks per state (``"3 tasks: 2 COMPLETED, 1 FAILED"``),
        ``restart_count`` is the highest known, ``name`` the tasks' name when they share one,
        ``source`` the sources joined with ``+``. No tasks gives UNKNOWN (``"no tasks"``).
    """
    tasks = sorted(tasks, key=lambda info: info.job_id)
    if not tasks:
        return JobInfo(job_id, JobState.UNKNOWN, "no tasks")
    present = {info.state for info in tasks}
    order = _UNFINISHED if present - set(_ENDINGS) else _ENDINGS
    state = next(state for state in order if state in present)
    telling = next(info for info in tasks if info.state is state)
    counts = Counter(info.state.value for info in tasks)
    restarts = [info.restart_count for info in tasks if info.restart_count is not None]
    names = {info.name for info in tasks}
    return JobInfo(
        job_id,
        state,
        f"{len(tasks)} task{'s' if len(tasks) > 1 else ''}: "
        + ", ".join(f"{n} {name}" for name, n in sorted(counts.items())),
        telling.exit_code,
        telling.exit_signal,
        reason=telling.reason,
        name=names.pop() if len(names) == 1 else "",
        restart_count=max(restarts) if restarts else None,
        source="+".join(sorted({info.source for info in tasks if info.source})),
    )
