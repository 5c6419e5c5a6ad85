"""Slurm's command line tools (sbatch, squeue, sacct, scontrol, scancel) for the launcher.

Each call goes through :func:`~model_training_framework.process_utils.run_command`: a timeout,
and a :class:`~model_training_framework.errors.LauncherError` showing the command, its exit
status and its stderr.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_training_framework.errors import LauncherError
from model_training_framework.launch.slurm.parsing import parse_sbatch_job_id
from model_training_framework.process_utils import DEFAULT_TIMEOUT_S, CommandResult, run_command

__all__ = ["SlurmCommands"]

logger = logging.getLogger(__name__)

_ACCOUNTING_DISABLED = "accounting storage is disabled"
_INVALID_JOB_ID = "Invalid job id"
JOBCOMP_TAIL_BYTES = 32 * 1024 * 1024


@dataclass
class SlurmCommands:
    """Thin wrappers around sbatch, squeue, sacct, scontrol and scancel.

    Args:
        timeout_s: per-command timeout.
        env: extra environment variables (e.g. ``SLURM_CONF``) on top of ``os.environ``.
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    env: Mapping[str, str] = field(default_factory=dict)

    def _run(self, args: Sequence[str], *, check: bool = True) -> CommandResult:
        logger.debug("running %s", shlex.join(args))
        return run_command(
            args, timeout_s=self.timeout_s, env={**os.environ, **self.env}, check=check
        )

    def sbatch(self, script_path: str | Path, extra_args: Sequence[str] = ()) -> str:
        """Submit a script with ``sbatch --parsable`` and return the job id.

        Raises:
            LauncherError: sbatch is missing, refused the job (stderr shown) or printed no id.
        """
        result = self._run(["sbatch", "--parsable", *extra_args, str(script_path)])
        try:
            return parse_sbatch_job_id(result.stdout)
        except ValueError as err:
            raise LauncherError(
                f"sbatch accepted {script_path} but {err}; stderr: {result.stderr.strip()}"
            ) from err

    def squeue(self) -> str:
        """This user's jobs known to the controller, all states, array tasks one per line."""
        return self._run(["squeue", "--me", "-t", "all", "-r", "-h", "-o", "%i|%T|%r|%j"]).stdout

    def scontrol_show_job(self, job_id: str) -> str:
        """``scontrol -o show job ID``; empty text when the controller no longer knows the job."""
        result = self._run(["scontrol", "-o", "show", "job", job_id], check=False)
        if result.returncode != 0:
            if _INVALID_JOB_ID in result.stderr + result.stdout:
                return ""
            raise LauncherError(f"scontrol show job {job_id} failed: {result.stderr.strip()}")
        return result.stdout

    def sacct(self, job_ids: Sequence[str], *, jobcomp: bool = False) -> str | None:
        """``sacct -P -n -o JobID,JobName,State,ExitCode -j IDS`` (``-c``: the jobcomp log).

        Returns:
            The output, or None when accounting (or the jobcomp log) is disabled here.
        """
        fields = "JobID,JobName,State,ExitCode"
        args = [
            "sacct",
            *(["-c"] if jobcomp else []),
            "-P",
            "-n",
            "-o",
            fields,
            "-j",
            ",".join(job_ids),
        ]
        result = self._run(args, check=False)
        if result.returncode != 0:
            if _ACCOUNTING_DISABLED in (result.stdout + result.stderr):
                return None
            raise LauncherError(
                f"{shlex.join(args)!r} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def jobcomp_log(self, max_bytes: int = JOBCOMP_TAIL_BYTES) -> str | None:
        """The end of the jobcomp/filetxt log (``JobCompLoc``), which ``sacct -c`` reads too.

        Only its last ``max_bytes`` are read (the newest records; the log keeps every job).

        Returns:
            The text, or None when the cluster logs no jobcomp file or it cannot be read here.
        """
        config = self._run(["scontrol", "show", "config"], check=False).stdout
        settings = dict(
            (key.strip(), value.strip())
            for key, sep, value in (line.partition("=") for line in config.splitlines())
            if sep
        )
        location = settings.get("JobCompLoc", "")
        if settings.get("JobCompType") != "jobcomp/filetxt" or not location:
            return None
        try:
            with open(location, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - max_bytes))
                return log.read().decode("utf-8", errors="replace")
        except OSError as err:
            logger.debug("cannot read the jobcomp log %s: %s", location, err)
            return None

    def scancel(
        self, job_ids: Sequence[str], *, signal: str | None = None, batch_only: bool = False
    ) -> None:
        """Cancel jobs, or with ``signal`` send them a signal (``batch_only``: only the batch shell)."""
        args = ["scancel"]
        if signal:
            args.append(f"--signal={signal}")
        if batch_only:
            args.append("--batch")
        self._run([*args, *job_ids])

    def scontrol_requeue(self, job_id: str) -> None:
        """``scontrol requeue ID``."""
        self._run(["scontrol", "requeue", job_id])

    def scontrol_disable_requeue(self, job_id: str) -> None:
        """``scontrol update JobId=ID Requeue=0``: Slurm then refuses to requeue the job."""
        self._run(["scontrol", "update", f"JobId={job_id}", "Requeue=0"])
