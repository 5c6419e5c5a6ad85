"""Who owns a run directory: the record a trainer writes into the run directory's lock file
(see :mod:`model_training_framework.trainer.state.run_lock`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import asdict, dataclass

from model_training_framework.slurm_env import current_slurm_job_id

__all__ = ["RunOwner", "parse_owner"]


@dataclass(frozen=True)
class RunOwner:
    """Who owns (or last owned) a run directory, as recorded in its lock file."""

    host: str
    pid: int
    started: str  # ISO 8601, UTC
    slurm_job_id: str | None = None

    @classmethod
    def of_this_process(cls) -> RunOwner:
        """This process: host name, pid, the current time and its Slurm job id if any
        (``<array>_<task>`` for an array task, see NOTE [array task ids] in slurm_env.py)."""
        return cls(
            host=socket.gethostname(),
            pid=os.getpid(),
            started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            slurm_job_id=current_slurm_job_id(),
        )

    @classmethod
    def from_record(cls, text: str) -> RunOwner:
        """Parse a lock file's record.

        Raises:
            ValueError: the text is not a record written by :meth:`to_record`.
        """
        try:
            data = json.loads(text)
            return cls(
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=str(data["started"]),
                slurm_job_id=data.get("slurm_job_id"),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not an owner record ({err}): {text[:80]!r}") from err

    def to_record(self) -> str:
        """The lock file's content: one JSON object."""
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    def describe(self) -> str:
        """E.g. ``host node7, pid 4242, started 2026-01-02T03:04:05+00:00, SLURM job 991``."""
        job = f", SLURM job {self.slurm_job_id}" if self.slurm_job_id else ""
        return f"host {self.host}, pid {self.pid}, started {self.started}{job}"

    def is_this_process(self) -> bool:
        """Whether the record names this very process (same host, same pid)."""
        return self.host == socket.gethostname() and self.pid == os.getpid()

    def is_gone(self) -> bool:
        """Whether the owner is known to have exited (only decidable on its own host)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by another user
            return False
        return False


def parse_owner(text: str) -> RunOwner | None:
    """The owner recorded in a lock file's ``text``; None for an empty or unreadable record."""
    try:
        return RunOwner.from_record(text) if text.strip() else None
    except ValueError:
        return None
