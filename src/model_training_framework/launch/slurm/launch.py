"""PURE: how a job script starts the training command: ``exec`` for one task, ``srun`` for more.

NOTE [multi-task launch]: ``sbatch`` runs the batch script once, on the first node. With one
task the script ``exec``s the command, so the training process is the batch shell and receives
``--signal=B:USR1`` (and ``scancel --signal=USR1 --batch``) itself. With more tasks in total
(``nodes`` x ``ntasks_per_node``) the script starts the command through ``srun`` (one process per
task, rank from ``SLURM_PROCID``, no torchrun) and stays alive to forward the preemption signal
and SIGTERM to ``srun``, which passes signals on to every task; ``wait`` returns early when a
trapped signal arrives, so the script waits again until ``srun`` ends and exits with its status.
The traps are set before ``srun`` starts, so a signal can never end the batch shell itself; one
that arrives before ``srun`` exists is dropped (only a signal at the very start of a job).

Example:
    >>> lines = launch_lines(ShellCommand(["python", "train.py"]), num_tasks=1)
    >>> lines.lines[-1]
    'exec python train.py'
"""

from __future__ import annotations

import shlex

from model_training_framework.launch.slurm.template import ShellCommand, ShellLines

__all__ = ["EXEC", "SRUN", "launch_lines", "launch_mode"]

EXEC = "exec"
SRUN = "srun"
_FORWARDED_SIGNALS = ("USR1", "TERM")


def launch_mode(num_tasks: int) -> str:
    """``"exec"`` for one task in total, ``"srun"`` for more.

    Raises:
        ValueError: ``num_tasks`` < 1.
    """
    if num_tasks < 1:
        raise ValueError(f"a job needs at least one task, got {num_tasks}")
    return EXEC if num_tasks == 1 else SRUN


def launch_lines(command: ShellCommand, num_tasks: int) -> ShellLines:
    """The script lines that start ``command`` with ``num_tasks`` tasks in total.

    Args:
        command: the training command (quoted word by word).
        num_tasks: ``nodes`` x ``ntasks_per_node`` of the experiment's ``slurm`` section.

    Returns:
        The lines, starting with a comment that says which launch was chosen.
    """
    quoted = shlex.join(command.words)
    if launch_mode(num_tasks) == EXEC:
        return ShellLines(["# launch=exec: 1 task in total", f"exec {quoted}"])
    # $! (the last background job: srun) is set as soon as srun is forked, before this shell
    # runs another command, so a trap can never see srun started but not yet named.
    traps = [f"trap 'kill -{name} $! 2>/dev/null || true' {name}" for name in _FORWARDED_SIGNALS]
    return ShellLines(
        [
            f"# launch=srun: {num_tasks} tasks in total; the batch shell forwards "
            f"{' and '.join(_FORWARDED_SIGNALS)} to them",
            *traps,  # first: no moment where the signal would end this shell
            f"srun {quoted} &",
            "mtf_srun_pid=$!",
            "mtf_status=0",
            'wait "$mtf_srun_pid" || mtf_status=$?',
            'while kill -0 "$mtf_srun_pid" 2>/dev/null; do',
            "  mtf_status=0",
            '  wait "$mtf_srun_pid" || mtf_status=$?',
            "done",
            'exit "$mtf_status"',
        ]
    )
