"""Run an external program (git, scontrol, sbatch) to completion, with a timeout.

Every call has a timeout and turns failures into :class:`~model_training_framework.errors.LauncherError`
messages that show the command, its exit status and its stderr. The trainer (a requeue request
from inside a job) and the launchers both run their commands through :func:`run_command`.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_training_framework.errors import LauncherError

__all__ = ["DEFAULT_TIMEOUT_S", "CommandResult", "run_command"]

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command: argv, exit status, stdout and stderr (text)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_command(
    args: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> CommandResult:
    """Run a command and capture its output.

    Args:
        args: program and arguments.
        timeout_s: seconds before the command is killed.
        env: full environment for the child (None inherits ours).
        cwd: working directory.
        check: raise when the exit status is not 0.
        input_bytes: data written to the child's stdin.

    Returns:
        The :class:`CommandResult`.

    Raises:
        LauncherError: the program is missing, timed out, or (``check``) exited non-zero; the
            message includes stderr.
    """
    shown = shlex.join(args)
    try:
        completed = subprocess.run(
            list(args),
            capture_output=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input_bytes,
            check=False,
        )
    except FileNotFoundError as err:
        raise LauncherError(
            f"cannot run {shown!r}: program {args[0]!r} not found on PATH; install it (for Slurm: "
            "run on a login node, or use LocalLauncher on a machine without Slurm)"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise LauncherError(
            f"{shown!r} did not finish within {timeout_s:g} s; is the Slurm controller up?"
        ) from err
    result = CommandResult(
        tuple(args),
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )
    if check and result.returncode != 0:
        raise LauncherError(
            f"{shown!r} failed with exit status {result.returncode}: "
            f"{(result.stderr.strip() or result.stdout.strip() or '(no output)')}"
        )
    return result
