"""``mtf sweep GRID.yaml``: expand a grid file into experiments and run them.

Modes (exactly one):

* ``--dry-run``: write every experiment directory (``config.yaml``, the rendered sbatch script
  ``job.sbatch.sh``, ``code_version.json``) and the job-array script, list the experiments with
  their swept values, and print the first job script. Needs no Slurm.
* ``--local [--parallel N]``: run the experiments as local processes, N at a time.
* ``--slurm [--max-concurrent N]``: submit them to Slurm as one job array.

In every mode an experiment whose Slurm job from an earlier submission is still queued or
running is skipped, with a message, and its files are left as they are (the job reads them when
it starts); ``mtf cancel`` stops that job, and ``--slurm --resubmit-active`` submits it anyway.

Every experiment runs ``python -m model_training_framework.experiment.entry --config
<experiment dir>/config.yaml`` from the project root (under Slurm: from a snapshot of it), so
the dotted paths in the config must be importable from there. Experiment directories go to
``<project root>/experiments/<grid file name>/`` (``--experiments-dir``); a relative
``checkpoint.root_dir`` is made absolute against the project root, so each run directory is
``<root_dir>/<experiment name>`` wherever the job runs, and a requeued or rerun experiment
resumes from its own latest checkpoint. ``mtf status <experiments dir>`` shows progress.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_RECORD", "RUNNER_COMMAND", "add_parser", "run_sweep"]

logger = logging.getLogger(__name__)

RUNNER_COMMAND = (
    "{PYTHON}",
    "-m",
    "model_training_framework.experiment.entry",
    "--config",
    "{CONFIG_PATH}",
)
LOCAL_RECORD = "local_run.json"  # exit code of a --local run, read by `mtf status`


def _experiments(grid_path: Path, project_root: Path) -> tuple[Any, list[Any]]:
    from model_training_framework.experiment.search import load_grid_search

    search = load_grid_search(grid_path)
    experiments = search.generate_experiments()
    for experiment in experiments:
        root = Path(experiment.checkpoint.root_dir)
        if not root.is_absolute():
            experiment.checkpoint.root_dir = str((project_root / root).resolve())
    return search, experiments


def _format_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items()) or "(base config)"


def _print_plan(search: Any, result: Any) -> None:
    from model_training_framework.experiment.search import describe_experiments

    described = dict(describe_experiments(search))
    width = max(len(item.experiment_name) for item in result.results)
    print(f"{len(result.results)} experiment(s):")
    for item in result.results:
        print(
            f"  {item.experiment_name:<{width}}  {_format_values(described[item.experiment_name])}"
        )


def _dry_run(launcher: Any, search: Any, experiments: list[Any], max_concurrent: int | None) -> int:
    result = launcher.submit_experiment_batch(experiments, None, max_concurrent, dry_run=True)
    _print_plan(search, result)
    print("job scripts (not submitted; launch: exec for one task, srun for more):")
    for item in result.results:
        print(f"  {item.script_path}  (launch: {item.launch})")
    first = result.results[0].script_path
    print(f"\n--- {first} ---")
    print(first.read_text(encoding="utf-8"), end="")
    return 0


def _run_local(launcher: Any, search: Any, experiments: list[Any], parallel: int) -> int:
    from model_training_framework.experiment.exit_codes import (
        EXIT_FAILED,
        EXIT_INTERRUPTED,
        EXIT_OK,
        EXIT_PREEMPTED,
    )

    result = launcher.submit_experiment_batch(experiments, None, parallel)
    _print_plan(search, result)
    # exit 3 and 130: the run checkpointed and stopped, and a rerun of the sweep continues it
    outcome = {EXIT_OK: "completed", EXIT_PREEMPTED: "preempted", EXIT_INTERRUPTED: "interrupted"}
    for item in result.results:
        record = {"job_id": item.job_id, "exit_code": item.exit_code}
        (item.experiment_dir / LOCAL_RECORD).write_text(json.dumps(record) + "\n")
        state = outcome.get(item.exit_code, f"failed (exit {item.exit_code})")
        print(f"  {item.experiment_name}: {state}; logs in {item.experiment_dir / 'logs'}")
    codes = {item.exit_code for item in result.results}
    if codes - set(outcome):
        return EXIT_FAILED
    for code in (EXIT_INTERRUPTED, EXIT_PREEMPTED):
        if code in codes:
            return code
    return EXIT_OK


def _run_slurm(
    launcher: Any, search: Any, experiments: list[Any], max_concurrent: int | None
) -> int:
    from model_training_framework.experiment.exit_codes import EXIT_FAILED, EXIT_OK
    from model_training_framework.launch.slurm.submissions import write_refusal, write_submission

    result = launcher.submit_experiment_batch(experiments, None, max_concurrent)
    _print_plan(search, result)
    for item in result.results:
        if item.job_id is not None:
            write_submission(item.experiment_dir, item.job_id, item.script_path)
            print(f"  {item.experiment_name}: job {item.job_id}")
        else:
            write_refusal(item.experiment_dir, str(item.error), item.script_path)
            print(f"  {item.experiment_name}: NOT submitted (see below)")
    _report_refusals(result.failed)
    return EXIT_FAILED if result.failed else EXIT_OK


def _report_refusals(failed: list[Any]) -> None:
    """Print each array that sbatch refused (or that could not be submitted) once: its
    experiments share one error. A hint follows."""
    by_error: dict[str, list[str]] = {}
    for item in failed:
        by_error.setdefault(str(item.error), []).append(item.experiment_name)
    for error, names in by_error.items():
        print(
            f"{len(names)} experiment(s) NOT submitted: {', '.join(names)}\n"
            f"  {error.strip().replace(chr(10), chr(10) + '  ')}\n"
            "  hint: request what the cluster has (the slurm section: mem, time, partition, "
            "cpus_per_task, gpus_per_node; see 'sinfo -N -o \"%N %P %c %m %G %l\"'), then run "
            "the sweep again: it submits the experiments that are not queued or running",
            file=sys.stderr,
        )


def _without_active_jobs(experiments: list[Any], sweep_dir: Path, *, is_slurm: bool) -> list[Any]:
    """The experiments to write and run: those whose recorded Slurm job is not queued or running.

    NOTE [active jobs]: a queued array task runs ``bash <experiment>/job.sbatch.sh`` with
    ``<experiment>/config.yaml`` when it starts (and again at each requeue), so every mode that
    writes an experiment directory (``--slurm``, ``--dry-run``, ``--local``) would change what
    that job runs; a dry run's job script even ``cd``s into the live project instead of the code
    snapshot. A second job would train the same run directory: it waits in the queue for
    nothing, or starts and stops at once on the run's lock. Only ``--slurm --resubmit-active``
    writes such an experiment anyway.

    Where ``squeue`` is missing (``--dry-run`` and ``--local`` need no Slurm), an experiment
    with a recorded job is skipped too: whether its job is still queued cannot be told here.
    """
    from model_training_framework.launch.slurm.monitor import SLURMJobMonitor
    from model_training_framework.launch.slurm.submissions import active_jobs, read_submitted_job

    by_dir = {sweep_dir / experiment.experiment_name: experiment for experiment in experiments}
    hint = (
        "or submit a second job anyway with --resubmit-active"
        if is_slurm
        else "rewriting its config.yaml and job script would change what that job runs"
    )
    if not is_slurm and shutil.which("squeue") is None:
        recorded = {path: read_submitted_job(path) for path in by_dir}
        skipped = {path: job_id for path, job_id in recorded.items() if job_id is not None}
        for experiment_dir, job_id in sorted(skipped.items()):
            print(
                f"  {experiment_dir.name}: skipped, its Slurm job {job_id} may still be queued or "
                f"running and squeue is not available here to check ({hint})"
            )
        return [experiment for path, experiment in by_dir.items() if path not in skipped]
    active = active_jobs(list(by_dir), SLURMJobMonitor())
    for experiment_dir, info in sorted(active.items()):
        print(
            f"  {experiment_dir.name}: skipped, its job {info.job_id} is {info.state.value} "
            f"(stop it with 'mtf cancel {sweep_dir} {experiment_dir.name}', {hint})"
        )
    return [experiment for path, experiment in by_dir.items() if path not in active]


def run_sweep(args: argparse.Namespace) -> int:
    """Run ``mtf sweep`` with parsed arguments; returns the exit code."""
    from model_training_framework.launch.local import LocalLauncher
    from model_training_framework.launch.slurm.launcher import SLURMLauncher

    if not args.grid.is_file():
        raise FileNotFoundError(f"grid file {args.grid} does not exist")
    if args.parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {args.parallel}")
    project_root = args.project_root.resolve()
    sweep_dir = (args.experiments_dir or project_root / "experiments" / args.grid.stem).resolve()
    search, experiments = _experiments(args.grid, project_root)
    if args.local:
        launcher = LocalLauncher(project_root, sweep_dir, command=RUNNER_COMMAND)
    else:
        launcher = SLURMLauncher(args.template, project_root, sweep_dir, command=RUNNER_COMMAND)
    if args.slurm:
        _require_sbatch()
    skipped: set[str] = set()
    if not (args.slurm and args.resubmit_active):
        kept = _without_active_jobs(experiments, sweep_dir, is_slurm=args.slurm)
        skipped = {e.experiment_name for e in experiments} - {e.experiment_name for e in kept}
        experiments = kept
    if not experiments:
        nothing = "submitted" if args.slurm else "to run" if args.local else "written"
        print(f"nothing {nothing}: every experiment of the sweep has a queued or running job")
        return 0
    # before the manifest: a refused experiment or a template that fails writes nothing
    launcher.check_batch(experiments, None)
    search.write_manifest(sweep_dir, keep=skipped)  # skipped: their entries stay as they were
    if args.local:
        return _run_local(launcher, search, experiments, args.parallel)
    if args.dry_run:
        return _dry_run(launcher, search, experiments, args.max_concurrent)
    return _run_slurm(launcher, search, experiments, args.max_concurrent)


def _require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        from model_training_framework.errors import LauncherError

        raise LauncherError(
            "sbatch not found on PATH: submit from a Slurm login node, run the sweep here with "
            "--local, or see its job scripts with --dry-run"
        )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf sweep``."""
    parser = subparsers.add_parser(
        "sweep",
        help="expand a grid file and run its experiments (--dry-run, --local or --slurm)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "grid", type=Path, metavar="GRID.yaml", help="grid file (see docs/slurm.md)"
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="write scripts, submit nothing")
    mode.add_argument("--local", action="store_true", help="run as local processes")
    mode.add_argument("--slurm", action="store_true", help="submit one Slurm job array")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="--local: processes at once (default 1)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="--slurm: array tasks running at once (%%N); default: no limit",
    )
    parser.add_argument(
        "--resubmit-active",
        action="store_true",
        help="--slurm: also submit experiments whose job is still queued or running (by "
        "default they are skipped)",
    )
    parser.add_argument(
        "--project-root",
        type=Path,
        default=Path("."),
        help="directory the jobs run in (snapshotted for Slurm); default: current directory",
    )
    parser.add_argument(
        "--experiments-dir",
        type=Path,
        default=None,
        help="parent of the experiment directories; default: "
        "<project root>/experiments/<grid file name without .yaml>",
    )
    parser.add_argument(
        "--template", type=Path, default=None, help="sbatch template; default: the built-in one"
    )
    parser.set_defaults(handler=run_sweep)
