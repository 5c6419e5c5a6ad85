"""PURE: parse what sbatch, squeue, sacct and scontrol print.

Formats the monitor asks for (``|``-delimited, ``--parsable2`` style, no header):

- squeue: ``squeue -t all -r -h -o '%i|%T|%r|%j'`` -> job id, state, reason, name
- sacct: ``sacct -P -n -o JobID,JobName,State,ExitCode`` (also ``sacct -c``, the jobcomp log)
- scontrol: ``scontrol -o show job ID`` -> one ``Key=Value ...`` record per line
- the jobcomp/filetxt log itself (``JobCompLoc``): one ``Key=Value ...`` record per ended job

Example:
    >>> parse_state("CANCELLED by 1000")
    (<JobState.CANCELLED: 'CANCELLED'>, 'CANCELLED by 1000')
    >>> parse_exit_code("1:15")
    (1, 15)
    >>> parse_sbatch_job_id("1234;cluster\\n")
    '1234'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "JobInfo",
    "JobState",
    "ParseError",
    "base_job_id",
    "expand_array_task_spec",
    "matches_job_id",
    "parse_exit_code",
    "parse_job_id",
    "parse_jobcomp_log",
    "parse_sacct",
    "parse_sbatch_job_id",
    "parse_scontrol_jobs",
    "parse_squeue",
    "parse_state",
]


class ParseError(ValueError):
    """Output of a Slurm command does not have the expected shape."""


class JobState(str, Enum):
    """Slurm job states (``squeue``/``sacct`` long names); UNKNOWN keeps anything else."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    CONFIGURING = "CONFIGURING"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    REQUEUED = "REQUEUED"
    REQUEUE_FED = "REQUEUE_FED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    RESIZING = "RESIZING"
    RESV_DEL_HOLD = "RESV_DEL_HOLD"
    REVOKED = "REVOKED"
    SIGNALING = "SIGNALING"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    STAGE_OUT = "STAGE_OUT"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True when the job will not run again unless someone requeues it."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.CANCELLED,
        JobState.FAILED,
        JobState.TIMEOUT,
        JobState.PREEMPTED,
        JobState.NODE_FAIL,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.OUT_OF_MEMORY,
        JobState.REVOKED,
    }
)
ACTIVE_STATES = frozenset(JobState) - TERMINAL_STATES - {JobState.UNKNOWN}

# squeue's compact codes (``%t``), accepted as well.
_SHORT_STATES = {
    "PD": JobState.PENDING,
    "R": JobState.RUNNING,
    "S": JobState.SUSPENDED,
    "CG": JobState.COMPLETING,
    "CD": JobState.COMPLETED,
    "CF": JobState.CONFIGURING,
    "CA": JobState.CANCELLED,
    "F": JobState.FAILED,
    "TO": JobState.TIMEOUT,
    "PR": JobState.PREEMPTED,
    "NF": JobState.NODE_FAIL,
    "BF": JobState.BOOT_FAIL,
    "DL": JobState.DEADLINE,
    "OOM": JobState.OUT_OF_MEMORY,
    "RQ": JobState.REQUEUED,
    "RF": JobState.REQUEUE_FED,
    "RH": JobState.REQUEUE_HOLD,
    "RS": JobState.RESIZING,
    "RD": JobState.RESV_DEL_HOLD,
    "RV": JobState.REVOKED,
    "SI": JobState.SIGNALING,
    "SE": JobState.SPECIAL_EXIT,
    "SO": JobState.STAGE_OUT,
    "ST": JobState.STOPPED,
}
_JOB_ID = re.compile(r"^(\d+)(?:_(\d+|\[[0-9,\-%]+\]))?(?:\+\d+)?(?:\.[A-Za-z0-9_]+)?$")


@dataclass(frozen=True)
class JobInfo:
    """What Slurm says about one job or array task.

    Attributes:
        job_id: ``"123"`` or ``"123_4"`` for an array task.
        state: parsed state; UNKNOWN when Slurm printed something we do not know.
        raw_state: the state string as printed (``"CANCELLED by 1000"``).
        exit_code: the program's exit status, None when not known (yet).
        exit_signal: the signal that ended it (0 = none), None when not known.
        reason: squeue/scontrol reason (``"Resources"``), "" when none.
        name: job name.
        restart_count: how often the job was requeued, None when not known.
        source: which command reported it (``squeue``, ``scontrol``, ``sacct``, ``jobcomp``).
    """

    job_id: str
    state: JobState
    raw_state: str
    exit_code: int | None = None
    exit_signal: int | None = None
    reason: str = ""
    name: str = ""
    restart_count: int | None = None
    source: str = ""


def parse_state(raw: str) -> tuple[JobState, str]:
    """Parse a state string from squeue, sacct or scontrol.

    Args:
        raw: e.g. ``"RUNNING"``, ``"CANCELLED by 1000"``, ``"CD"``, ``"COMPLETED+"``.

    Returns:
        ``(state, raw)``; unknown words give ``JobState.UNKNOWN`` with the raw text kept.
    """
    text = raw.strip()
    word = text.split(" ", 1)[0].rstrip("+") if text else ""
    if word in JobState.__members__:
        return JobState[word], text
    return _SHORT_STATES.get(word, JobState.UNKNOWN), text


def parse_exit_code(raw: str) -> tuple[int | None, int | None]:
    """Parse ``"status:signal"`` (``"0:0"``, ``"1:15"``); empty or odd text gives Nones."""
    parts = raw.strip().split(":")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None, None
    return int(parts[0]), int(parts[1])


def parse_sbatch_job_id(output: str) -> str:
    """Job id from ``sbatch --parsable`` output (``"123"`` or ``"123;cluster"``).

    Raises:
        ParseError: the output holds no job id.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    candidate = lines[-1].split(";", 1)[0] if lines else ""
    if not candidate.isdigit():
        raise ParseError(f"sbatch --parsable printed {output!r}; expected a job id like '123'")
    return candidate


def parse_job_id(job_id: str) -> tuple[str, str | None]:
    """Split ``"123_4"`` into ``("123", "4")``; ``"123_[5-9%2]"`` gives ``("123", "[5-9%2]")``.

    Step suffixes (``.batch``) and het-job offsets (``+1``) are accepted and dropped.

    Raises:
        ParseError: not a Slurm job id.
    """
    match = _JOB_ID.match(job_id.strip())
    if not match:
        raise ParseError(
            f"{job_id!r} is not a Slurm job id; expected '123', '123_4' or '123_[0-3]'"
        )
    return match.group(1), match.group(2)


def base_job_id(job_id: str) -> str:
    """The array (or plain) job id: ``"123_4"`` -> ``"123"``."""
    return parse_job_id(job_id)[0]


def expand_array_task_spec(spec: str) -> list[int]:
    """Expand ``"[0-3,7%2]"`` or ``"0-3:2"`` into task ids (the ``%`` throttle is ignored).

    Raises:
        ParseError: the spec is malformed.
    """
    body = spec.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    tasks: list[int] = []
    for part in filter(None, body.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not match:
            raise ParseError(f"array task spec {spec!r}: cannot read {part!r}")
        start = int(match.group(1))
        stop = int(match.group(2) or start)
        step = int(match.group(3) or 1)
        tasks.extend(range(start, stop + 1, step))
    return tasks


def matches_job_id(requested: str, reported: str) -> bool:
    """True when a reported job id belongs to a requested id (an array id covers its tasks)."""
    requested_base, requested_task = parse_job_id(requested)
    reported_base, reported_task = parse_job_id(reported)
    if requested_base != reported_base:
        return False
    return requested_task is None or requested_task == reported_task


def _split_rows(text: str, num_fields: int, command: str) -> Iterable[list[str]]:
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < num_fields:
            raise ParseError(
                f"{command} line {line!r} has {len(fields)} '|'-separated fields, expected {num_fields}"
            )
        yield fields


def _expand_rows(job_id: str) -> list[str]:
    base, task = parse_job_id(job_id)
    if task is None or task.isdigit():
        return [f"{base}_{task}" if task else base]
    return [f"{base}_{idx}" for idx in expand_array_task_spec(task)]


def parse_squeue(text: str) -> list[JobInfo]:
    """Parse ``squeue -h -o '%i|%T|%r|%j'`` output; pending array ranges are expanded."""
    infos = []
    for job_id, raw_state, reason, name, *_ in _split_rows(text, 4, "squeue"):
        state, raw = parse_state(raw_state)
        for one_id in _expand_rows(job_id):
            infos.append(JobInfo(one_id, state, raw, reason=reason, name=name, source="squeue"))
    return infos


def parse_sacct(text: str, source: str = "sacct") -> list[JobInfo]:
    """Parse ``sacct -P -n -o JobID,JobName,State,ExitCode`` output; job steps are skipped."""
    infos = []
    for job_id, name, raw_state, exit_code, *_ in _split_rows(text, 4, source):
        if "." in job_id:
            continue  # 123.batch / 123.extern steps
        state, raw = parse_state(raw_state)
        code, signal = parse_exit_code(exit_code)
        for one_id in _expand_rows(job_id):
            infos.append(JobInfo(one_id, state, raw, code, signal, name=name, source=source))
    return infos


def _scontrol_fields(line: str) -> dict[str, str]:
    # Values never contain " Key=" except free text at the end (Command=, WorkDir=...), which we
    # do not read; split on spaces that precede a Key=.
    fields = {}
    for token in re.split(r" (?=[A-Za-z/:_]+=)", line.strip()):
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def parse_scontrol_jobs(text: str) -> list[JobInfo]:
    """Parse ``scontrol -o show job`` output (one record per line)."""
    infos = []
    for line in text.splitlines():
        if "JobId=" not in line:
            continue
        fields = _scontrol_fields(line)
        job_id = _record_job_id(fields)
        state, raw = parse_state(fields.get("JobState", ""))
        code, signal = parse_exit_code(fields.get("ExitCode", ""))
        restarts = fields.get("Restarts", "")
        for one_id in _expand_rows(job_id):
            infos.append(
                JobInfo(
                    one_id,
                    state,
                    raw,
                    code,
                    signal,
                    reason=fields.get("Reason", ""),
                    name=fields.get("JobName", ""),
                    restart_count=int(restarts) if restarts.isdigit() else None,
                    source="scontrol",
                )
            )
    return infos


def _record_job_id(fields: dict[str, str]) -> str:
    """``<array>_<task>`` for an array task's ``Key=Value`` record, else its ``JobId``."""
    task = fields.get("ArrayTaskId", "")
    if task and fields.get("ArrayJobId"):
        return f"{fields['ArrayJobId']}_{task if task.isdigit() else '[' + task + ']'}"
    return fields["JobId"]


def parse_jobcomp_log(text: str) -> list[JobInfo]:
    """Parse the jobcomp/filetxt log: the last record of each job, array tasks as ``12_3``.

    Each ended job appends ``JobId=13 ... Name=x JobState=COMPLETED ... ArrayJobId=12
    ArrayTaskId=3 ... ExitCode=0:0``; a requeue appends one with ``JobState=PENDING``, so the
    last record of a job wins. ``sacct -c`` reads this file but not its ``ArrayJobId`` and
    ``ArrayTaskId`` (Slurm 22.05: "Unknown type ArrayJobId"), and shows an array task only by its
    own numeric id (``JobID`` and ``JobIDRaw`` alike), never as the ``12_3`` the launcher records.
    """
    latest: dict[str, JobInfo] = {}
    for line in text.splitlines():
        if not line.startswith("JobId="):
            continue  # also a partial first line of a tail read
        fields = _scontrol_fields(line)
        job_id = _record_job_id(fields)
        state, raw = parse_state(fields.get("JobState", ""))
        code, signal = parse_exit_code(fields.get("ExitCode", ""))
        latest.pop(job_id, None)  # keep file order: the latest record last
        latest[job_id] = JobInfo(
            job_id, state, raw, code, signal, name=fields.get("Name", ""), source="jobcomp"
        )
    return list(latest.values())
