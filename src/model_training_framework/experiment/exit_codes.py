"""Process exit codes shared by ``mtf`` and the experiment runner (PURE: standard library only).

A launcher (``mtf sweep --local``, a SLURM job, a shell script) tells a preempted run apart from a
failed one by its exit status.
"""

from __future__ import annotations

import itertools

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PREEMPTED",
    "exit_code_for",
    "one_line_message",
]

EXIT_OK = 0
EXIT_FAILED = 1  # some experiments of a sweep failed (or some jobs mtf cancel could not cancel)
EXIT_ERROR = 2  # bad input: wrong arguments, invalid config, missing file (one-line message)
EXIT_PREEMPTED = 3  # the run checkpointed after a preemption signal; rerun it to continue
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), after the trainer checkpointed

_BY_STATUS = {
    "completed": EXIT_OK,
    "early_stopped": EXIT_OK,
    "preempted": EXIT_PREEMPTED,
    "interrupted": EXIT_INTERRUPTED,
}


def exit_code_for(status: str) -> int:
    """Map a ``FitStatus`` value (``"completed"``, ``"preempted"``, ...) to the exit code.

    Args:
        status: the status value (a ``FitStatus`` works too: it is a ``str`` enum).

    Returns:
        0 for completed and early-stopped runs, 3 for preempted, 130 for interrupted.

    Raises:
        ValueError: an unknown status.
    """
    key = getattr(status, "value", status)
    if key not in _BY_STATUS:
        raise ValueError(f"unknown fit status {status!r}; expected one of {sorted(_BY_STATUS)}")
    return _BY_STATUS[key]


def one_line_message(err: BaseException) -> str:
    """Render an error as one line: its message lines joined by ``"; "`` (or its type name).

    A line that ends with ``:`` introduces the next one and is joined to it by a space.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[0]
    for previous, line in itertools.pairwise(lines):
        text += (" " if previous.endswith(":") else "; ") + line
    return text
