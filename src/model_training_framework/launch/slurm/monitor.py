"""SLURMJobMonitor: job states, waiting with a timeout, summaries.

Where states come from, in order (each only for ids the previous step did not settle):

1. ``squeue --me -t all -r`` (``|``-delimited): pending/running jobs and jobs the controller
   still remembers (``MinJobAge``), array tasks one per line.
2. ``scontrol -o show job ID``: exit codes and restart counts (for finished jobs squeue shows).
3. ``sacct -P`` (accounting database). Many small clusters, and the test Slurm, run without
   one: sacct then says "accounting storage is disabled" and the step is skipped.
4. ``sacct -c`` (the jobcomp log, finished plain jobs).
5. The jobcomp log itself (jobcomp/filetxt), for array tasks: ``sacct -c`` shows a task only by
   its own numeric id (``1235``), never as the ``1234_1`` the launcher records, but the log's
   records name the array and task (``ArrayJobId=1234 ArrayTaskId=1``).

Jobs found nowhere are reported as ``UNKNOWN`` with raw state ``"not found"``.

NOTE [bare array ids]: a bare array id (``"1234"``) means every task of the array. The
controller forgets each task ``MinJobAge`` after it ends, so a long array's early tasks may be
gone while later ones still show: once every task the controller knows has ended, steps 3-5 run
for the array too and add the forgotten tasks (the controller's own states win where both know a
task). Without accounting, ``sacct -c -j 1234`` prints a single row ``1234``: the task that kept
the array's own job id (NOTE [array task ids] in slurm_env.py), not the array; such a row is
dropped wherever the array's tasks are found (the jobcomp log names them), and is reported as
is only when they are found nowhere, e.g. where the log cannot be read here.
:meth:`SLURMJobMonitor.overall_states` gives one state per requested id
(:func:`~model_training_framework.launch.slurm.job_summary.summarize_job` for an array).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from model_training_framework.errors import LauncherError
from model_training_framework.launch.slurm.commands import SlurmCommands
from model_training_framework.launch.slurm.job_summary import summarize_job
from model_training_framework.launch.slurm.parsing import (
    JobInfo,
    JobState,
    base_job_id,
    matches_job_id,
    parse_job_id,
    parse_jobcomp_log,
    parse_sacct,
    parse_scontrol_jobs,
    parse_squeue,
)

__all__ = ["JobWaitTimeout", "SLURMJobMonitor"]

logger = logging.getLogger(__name__)

NOT_FOUND = "not found"


class JobWaitTimeout(LauncherError, TimeoutError):
    """``wait_for_jobs`` ran out of time; ``states`` holds the last known states."""

    def __init__(self, message: str, states: Mapping[str, JobInfo]) -> None:
        super().__init__(message)
        self.states = dict(states)


class SLURMJobMonitor:
    """Query and wait for Slurm jobs.

    Args:
        commands: the Slurm command runner.
        clock: monotonic seconds (injectable for tests).
        sleep: sleeps the given seconds (injectable for tests).

    Example:
        >>> monitor = SLURMJobMonitor()                                     # doctest: +SKIP
        >>> states = monitor.wait_for_jobs(["812"], timeout_s=3600, poll_interval_s=30)  # doctest: +SKIP
        >>> monitor.summary(states)                                         # doctest: +SKIP
        {'COMPLETED': 4}
    """

    def __init__(
        self,
        commands: SlurmCommands | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.commands = commands or SlurmCommands()
        self.clock = clock
        self.sleep = sleep

    def get_job_states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Current state of each job; an array id (``"812"``) expands to all its tasks.

        Args:
            job_ids: plain, array or array-task ids (``"811"``, ``"812"``, ``"812_3"``).

        Returns:
            Reported job id -> :class:`JobInfo`, one entry per task of an array (also those the
            controller has forgotten: NOTE [bare array ids]); ids Slurm does not know map to
            UNKNOWN. :meth:`overall_states` turns this into one entry per requested id.

        Raises:
            LauncherError: a Slurm command failed.
        """
        for job_id in job_ids:
            base_job_id(job_id)  # raises ParseError on malformed ids
        found = _select(parse_squeue(self.commands.squeue()), job_ids)
        unsettled = {
            base_job_id(job_id)
            for job_id in job_ids
            if not _covered(job_id, found)
            or any(
                info.state.is_terminal
                for info in found.values()
                if matches_job_id(job_id, info.job_id)
            )
        }
        for base in sorted(unsettled):
            found.update(
                _select(parse_scontrol_jobs(self.commands.scontrol_show_job(base)), job_ids)
            )
        # NOTE [bare array ids]: an array whose known tasks have all ended may have more.
        missing = [
            job_id
            for job_id in job_ids
            if not _covered(job_id, found) or _is_ended_array(job_id, found)
        ]
        if missing:
            found = {**self._from_accounting(missing), **found}  # the controller's states win
        found = _without_array_rows(found)
        for job_id in job_ids:
            if not _covered(job_id, found):
                found[job_id] = JobInfo(job_id, JobState.UNKNOWN, NOT_FOUND)
        return found

    def _from_accounting(self, job_ids: list[str]) -> dict[str, JobInfo]:
        found: dict[str, JobInfo] = {}
        text = self.commands.sacct(job_ids)
        if text is None:
            logger.debug("sacct: accounting storage is disabled; trying the jobcomp log")
        else:
            found.update(_select(parse_sacct(text), job_ids))
        rest = [job_id for job_id in job_ids if not _covered(job_id, found)]
        if rest:
            text = self.commands.sacct(rest, jobcomp=True)
            if text is not None:
                found.update(_select(parse_sacct(text, source="jobcomp"), rest))
        # sacct -c shows array tasks by their own ids: the log is the only way to find the
        # tasks of an array id, and to tell that a row sacct -c printed for it is one task's.
        in_log = [job_id for job_id in rest if _is_bare(job_id) or not _covered(job_id, found)]
        if in_log:
            text = self.commands.jobcomp_log()
            if text is not None:
                found.update(_select(parse_jobcomp_log(text), in_log))
        return found

    def wait_for_jobs(
        self, job_ids: Sequence[str], timeout_s: float, poll_interval_s: float = 30.0
    ) -> dict[str, JobInfo]:
        """Poll until every job is in a terminal state (COMPLETED, FAILED, CANCELLED, ...).

        Args:
            job_ids: ids to wait for (array ids cover all their tasks).
            timeout_s: give up after this many seconds.
            poll_interval_s: seconds between polls.

        Returns:
            Final states (reported id -> :class:`JobInfo`).

        Raises:
            JobWaitTimeout: not all jobs finished in time (``.states`` has the last poll).
            LauncherError: a Slurm command failed.
        """
        deadline = self.clock() + timeout_s
        while True:
            states = self.get_job_states(job_ids)
            if all(info.state.is_terminal for info in states.values()):
                return states
            remaining = deadline - self.clock()
            if remaining <= 0:
                waiting = {k: v.raw_state for k, v in states.items() if not v.state.is_terminal}
                raise JobWaitTimeout(
                    f"jobs still not finished after {timeout_s:g} s: {waiting}; "
                    "raise timeout_s or check `squeue --me`",
                    states,
                )
            self.sleep(min(poll_interval_s, remaining))

    @staticmethod
    def overall_states(states: Mapping[str, JobInfo], job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """One state per requested id: a job or task as reported, an array over all its tasks.

        Args:
            states: what :meth:`get_job_states` or :meth:`wait_for_jobs` returned for ``job_ids``.
            job_ids: the ids asked for.

        Returns:
            Requested id -> :class:`JobInfo`; an array id's is
            :func:`~model_training_framework.launch.slurm.job_summary.summarize_job` of its
            tasks: FAILED when a task failed and every task has ended, RUNNING while one runs.

        Example:
            >>> states = monitor.wait_for_jobs(["812"], timeout_s=3600)   # doctest: +SKIP
            >>> monitor.overall_states(states, ["812"])["812"].state      # doctest: +SKIP
            <JobState.FAILED: 'FAILED'>
        """
        overall = {}
        for job_id in job_ids:
            reported = [info for key, info in states.items() if matches_job_id(job_id, key)]
            if [info.job_id for info in reported] == [job_id]:
                overall[job_id] = reported[0]
            else:
                overall[job_id] = summarize_job(job_id, reported)
        return overall

    @staticmethod
    def summary(states: Mapping[str, JobInfo] | Iterable[JobInfo]) -> dict[str, int]:
        """Count jobs per state name, e.g. ``{"COMPLETED": 3, "FAILED": 1}``."""
        infos = states.values() if isinstance(states, Mapping) else states
        return dict(sorted(Counter(info.state.value for info in infos).items()))


def _select(infos: Iterable[JobInfo], job_ids: Sequence[str]) -> dict[str, JobInfo]:
    return {
        info.job_id: info
        for info in infos
        if any(matches_job_id(job_id, info.job_id) for job_id in job_ids)
    }


def _covered(job_id: str, found: Mapping[str, JobInfo]) -> bool:
    return any(matches_job_id(job_id, reported) for reported in found)


def _is_bare(job_id: str) -> bool:
    """A plain job id or a whole array's: no task part."""
    return parse_job_id(job_id)[1] is None


def _is_ended_array(job_id: str, found: Mapping[str, JobInfo]) -> bool:
    """A bare id reported as array tasks only, every one of them ended (NOTE [bare array ids])."""
    reported = [info for key, info in found.items() if matches_job_id(job_id, key)]
    return (
        _is_bare(job_id)
        and bool(reported)
        and all(not _is_bare(info.job_id) and info.state.is_terminal for info in reported)
    )


def _without_array_rows(found: Mapping[str, JobInfo]) -> dict[str, JobInfo]:
    """Drop a row reported by an array's own id once its tasks are known (NOTE [bare array ids])."""
    arrays = {base_job_id(key) for key in found if not _is_bare(key)}
    return {key: info for key, info in found.items() if not (_is_bare(key) and key in arrays)}
