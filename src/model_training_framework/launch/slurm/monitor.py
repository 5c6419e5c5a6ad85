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
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from model_training_framework.errors import LauncherError
from model_training_framework.launch.slurm.commands import SlurmCommands
from model_training_framework.launch.slurm.parsing import (
    JobInfo,
    JobState,
    base_job_id,
    matches_job_id,
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
        """Current state of each job; an array id (``"812"``) expands to its tasks.

        Args:
            job_ids: plain, array or array-task ids (``"811"``, ``"812"``, ``"812_3"``).

        Returns:
            Reported job id -> :class:`JobInfo`; ids Slurm does not know map to UNKNOWN.

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
        missing = [job_id for job_id in job_ids if not _covered(job_id, found)]
        if missing:
            found.update(self._from_accounting(missing))
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
        tasks = [job_id for job_id in rest if "_" in job_id and not _covered(job_id, found)]
        if tasks:
            text = self.commands.jobcomp_log()
            if text is not None:
                found.update(_select(parse_jobcomp_log(text), tasks))
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
