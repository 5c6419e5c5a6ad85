"""``mtf cancel SWEEP_DIR [NAME ...]``: stop a sweep's Slurm jobs for good.

Plain ``scancel JOBID`` is a preemption to the trainer (Slurm sends the same SIGTERM when it
preempts a job): the run checkpoints and requeues itself. ``mtf cancel`` first switches the
job's requeue off, then cancels it: the run still writes its checkpoint, and the job ends
CANCELLED instead of coming back. Continue such a run later with ``mtf sweep GRID --slurm`` (it
resumes from the checkpoint) or ``mtf resume NAME``.

Without NAME every experiment of SWEEP_DIR whose recorded job (``submission.json``) is queued or
running is cancelled; with NAMEs only those experiments. Every job is attempted; when some
could not be cancelled (each is reported with Slurm's error) the exit status is 1.
By hand: ``scontrol update JobId=JOBID Requeue=0 && scancel JOBID``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["add_parser", "run_cancel"]


def _experiment_dirs(sweep_dir: Path, names: list[str]) -> list[Path]:
    from model_training_framework.launch.slurm.submissions import SUBMISSION_RECORD

    submitted = sorted(path.parent for path in sweep_dir.glob(f"*/{SUBMISSION_RECORD}"))
    if not names:
        return submitted
    known = {path.name: path for path in submitted}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"no Slurm submission for experiment(s) {unknown} in {sweep_dir}; submitted "
            f"experiments: {sorted(known) or 'none'}"
        )
    return [known[name] for name in names]


def run_cancel(sweep_dir: Path, names: list[str]) -> int:
    """Cancel the queued or running jobs of the sweep's experiments; returns the exit code.

    Every job is attempted: one that cannot be cancelled (it ended in between, Slurm refused)
    is reported on stderr and the others are still cancelled; the exit code is then
    ``EXIT_FAILED`` (1). A job whose requeue could not be switched off is not scancelled (it
    would checkpoint and requeue itself).
    """
    from model_training_framework.errors import LauncherError
    from model_training_framework.experiment.exit_codes import EXIT_FAILED, one_line_message
    from model_training_framework.launch.slurm.commands import SlurmCommands
    from model_training_framework.launch.slurm.monitor import SLURMJobMonitor
    from model_training_framework.launch.slurm.submissions import active_jobs, cancel_for_good
    from model_training_framework.text import counted

    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"{sweep_dir} is not a directory; pass a sweep's experiments directory (mtf sweep "
            "prints it)"
        )
    if shutil.which("scancel") is None:
        raise LauncherError("scancel not found on PATH: run mtf cancel on a Slurm login node")
    commands = SlurmCommands()
    active = active_jobs(_experiment_dirs(sweep_dir, names), SLURMJobMonitor(commands))
    if not active:
        print(f"no queued or running Slurm job for the experiments of {sweep_dir}")
        return 0
    failed: list[str] = []
    for experiment_dir, info in sorted(active.items()):
        job = f"{experiment_dir.name}: job {info.job_id} ({info.state.value})"
        try:
            cancel_for_good(info.job_id, commands)
        except LauncherError as err:  # e.g. the job ended in between; go on with the others
            failed.append(experiment_dir.name)
            print(f"  {job} not cancelled: {one_line_message(err)}", file=sys.stderr)
            continue
        print(f"  {job} cancelled, requeue off")
    print("running jobs write a checkpoint and stop; resubmit the sweep to continue them")
    if failed:
        print(
            f"mtf: {len(failed)} of {counted(len(active), 'job')} could not be cancelled: "
            f"{', '.join(failed)} (see above; 'mtf status {sweep_dir}' shows their state)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf cancel``."""
    parser = subparsers.add_parser(
        "cancel",
        help="stop a sweep's Slurm jobs for good (checkpoint, no requeue)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "directory", type=Path, metavar="SWEEP_DIR", help="experiments directory of a sweep"
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="only these experiments (default: all)"
    )
    parser.set_defaults(handler=lambda args: run_cancel(args.directory, args.names))
