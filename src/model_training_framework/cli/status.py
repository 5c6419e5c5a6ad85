"""``mtf status [DIR]``: where the experiments of a sweep (or the runs under a folder) stand.

DIR (default ``experiments``) is searched for experiment directories (holding ``config.yaml``,
written by ``mtf sweep``) and run directories (holding ``status.json``, written by ``mtf train``
and sweep jobs, or only checkpoints: runs started from Python, such as ``mtf demo``, show as
``checkpointed`` with the latest checkpoint's epoch and step).
For each experiment it shows the run's status (``running``, ``completed``, ``preempted``, ``failed``, ...,
or ``pending`` when it has not started; ``not submitted`` when sbatch refused it and it has no
job; ``failed`` also for a ``--local`` run whose process exited non-zero before training, see its
``logs/``), epoch, step, the latest ``val/loss`` or ``train/loss``
and, for Slurm submissions, the job id and its state when ``squeue`` is available.

A run whose directory lock (``.lock``) a live process holds is ``running``, whatever its files
say, and the owner (host, pid, start, SLURM job) is shown; its epoch, step and loss are the last
ones its ``metrics.jsonl`` logged (before its first log: its latest checkpoint's). A run whose ``status.json`` says
``running`` but whose lock is free is ``stale``: its process died without recording an end
(SIGKILL, node failure, out of memory); rerun it to resume from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

__all__ = ["ExperimentStatus", "add_parser", "collect_status", "run_status"]

_CONFIG = "config.yaml"
_MAX_DEPTH = 4
_LOSS_KEYS = ("val/loss", "train/loss")
_METRICS = "metrics.jsonl"
_PROGRESS = ("epoch", "global_step", "metrics")
_TAIL_BYTES = 1 << 16  # enough for the last records of any run's metrics.jsonl
RUNNING = "running"
PENDING = "pending"
NOT_SUBMITTED = "not submitted"
STALE = "stale"


@dataclass
class ExperimentStatus:
    """One row of ``mtf status``."""

    name: str
    status: str
    epoch: int | None
    global_step: int | None
    loss_key: str | None
    loss: float | None
    run_dir: str
    job_id: str | None = None
    job_state: str | None = None
    owner: str | None = None
    submit_error: str | None = None


def _find(root: Path, filename: str) -> list[Path]:
    found = []
    for depth in range(_MAX_DEPTH + 1):
        pattern = "/".join(["*"] * depth + [filename])
        found += [p.parent for p in root.glob(pattern) if not _hidden(p.parent.relative_to(root))]
    return sorted(set(found))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _run_dir_of(experiment_dir: Path) -> tuple[str, Path]:
    data = yaml.safe_load((experiment_dir / _CONFIG).read_text(encoding="utf-8")) or {}
    name = str(data.get("experiment_name") or experiment_dir.name)
    root = (data.get("checkpoint") or {}).get("root_dir") or "runs"
    return name, Path(root) / name


def _row(name: str, run_dir: Path, experiment_dir: Path | None) -> ExperimentStatus:
    from model_training_framework.experiment.entry import read_status
    from model_training_framework.trainer.state.run_lock import LOCK_NAME, read_lock_state

    record = (
        read_status(run_dir)
        or _record_from_checkpoint(run_dir)
        or _record_from_local_run(experiment_dir)
        or {"status": PENDING}
    )
    metrics = record.get("metrics") or {}
    loss_key = next((key for key in _LOSS_KEYS if key in metrics), None)
    status, owner = record["status"], None
    if (run_dir / LOCK_NAME).is_file():  # runs without a lock file are judged by their records
        lock = read_lock_state(run_dir)
        owner = None if lock.owner is None else lock.owner.describe()
        if lock.is_held:
            status = RUNNING
        elif status == RUNNING:
            status, owner = STALE, None if owner is None else f"{owner} (exited)"
        else:
            owner = None
    if status == RUNNING:  # its records say where it started; its log says where it is now
        progress = _progress_from_metrics(run_dir) or _record_from_checkpoint(run_dir) or {}
        record = {**record, **{key: progress[key] for key in _PROGRESS if key in progress}}
        metrics = record.get("metrics") or {}
        loss_key = next((key for key in _LOSS_KEYS if key in metrics), None)
    row = ExperimentStatus(
        name=name,
        status=status,
        epoch=record.get("epoch"),
        global_step=record.get("global_step"),
        loss_key=loss_key,
        loss=None if loss_key is None else metrics[loss_key],
        run_dir=str(run_dir),
        owner=owner,
    )
    if experiment_dir is not None:
        _add_submission(row, experiment_dir, has_record=record.get("status") != PENDING)
    return row


def _add_submission(row: ExperimentStatus, experiment_dir: Path, *, has_record: bool) -> None:
    """The job recorded by ``mtf sweep --slurm``; an experiment that sbatch refused and that has
    no job and no run is ``not submitted``, not ``pending`` (nothing is queued for it)."""
    from model_training_framework.launch.slurm.submissions import (
        read_submit_error,
        read_submitted_job,
    )

    row.job_id = read_submitted_job(experiment_dir)
    row.submit_error = read_submit_error(experiment_dir)
    if row.submit_error is not None and row.job_id is None and not has_record:
        row.status = NOT_SUBMITTED


def _progress_from_metrics(run_dir: Path) -> dict | None:
    """Epoch, step and losses of the last records of the run's ``metrics.jsonl`` (None when
    it has none yet). Only the end of the file is read: it grows with every logged step."""
    path = run_dir / _METRICS
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - _TAIL_BYTES))
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    records = []
    for line in reversed(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written, or one cut by the seek
            continue
    records = [r for r in records if isinstance(r, dict) and isinstance(r.get("step"), int)]
    if not records:
        return None
    epoch = next((r["epoch"] for r in records if isinstance(r.get("epoch"), float)), None)
    losses = {}  # the newest value of each (records run newest first)
    for key in _LOSS_KEYS:
        losses.update(next(({key: r[key]} for r in records if key in r), {}))
    return {
        "global_step": records[0]["step"],
        "epoch": None if epoch is None else int(epoch),
        "metrics": losses,
    }


def _record_from_local_run(experiment_dir: Path | None) -> dict | None:
    """``failed`` for a ``--local`` run that exited non-zero before its run wrote any record
    (e.g. a config error), which would otherwise look ``pending``."""
    from model_training_framework.cli.sweep import LOCAL_RECORD

    path = None if experiment_dir is None else experiment_dir / LOCAL_RECORD
    if path is None or not path.is_file():
        return None
    if json.loads(path.read_text(encoding="utf-8")).get("exit_code") in (0, None):
        return None
    return {"status": "failed"}


def _record_from_checkpoint(run_dir: Path) -> dict | None:
    """Epoch, step and last metrics from the run's latest checkpoint (no ``status.json``)."""
    latest = run_dir / "latest.ckpt"
    if not latest.exists():
        return None
    from model_training_framework.trainer.state.manager import describe_checkpoint

    described = describe_checkpoint(latest)
    trainer_state = described.get("trainer") or {}
    return {
        "status": "checkpointed",
        "epoch": described.get("epoch"),
        "global_step": described.get("global_step"),
        "metrics": trainer_state.get("last_metrics") or described.get("metrics") or {},
    }


def collect_status(directory: Path) -> list[ExperimentStatus]:
    """Status of every experiment and run found under ``directory``.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
    """
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} is not a directory; pass a sweep's experiments directory (mtf sweep "
            "prints it) or a runs directory"
        )
    rows: dict[str, ExperimentStatus] = {}
    for experiment_dir in _find(directory, _CONFIG):
        name, run_dir = _run_dir_of(experiment_dir)
        rows[str(run_dir.resolve())] = _row(name, run_dir, experiment_dir)
    from model_training_framework.trainer.state.run_lock import LOCK_NAME

    run_dirs = _find(directory, "status.json") + _find(directory, "latest.ckpt")
    for run_dir in run_dirs + _find(directory, LOCK_NAME):
        rows.setdefault(str(run_dir.resolve()), _row(run_dir.name, run_dir, None))
    return sorted(rows.values(), key=lambda row: row.name)


def _add_job_states(rows: list[ExperimentStatus]) -> None:
    job_ids = [row.job_id for row in rows if row.job_id]
    if not job_ids or shutil.which("squeue") is None:
        return
    from model_training_framework.launch.slurm.monitor import SLURMJobMonitor

    states = SLURMJobMonitor().get_job_states(job_ids)
    for row in rows:
        info = states.get(row.job_id) if row.job_id else None
        if info is not None:
            row.job_state = info.state.value


def _format(row: ExperimentStatus) -> list[str]:
    loss = "" if row.loss is None else f"{row.loss_key}={row.loss:.4g}"
    job = (
        ""
        if row.job_id is None
        else f"job {row.job_id}" + (f" {row.job_state}" if row.job_state else "")
    )
    if row.submit_error is not None:
        job = f"{job}; resubmission refused by sbatch" if job else "refused by sbatch"
    epoch = "" if row.epoch is None else str(row.epoch)
    step = "" if row.global_step is None else str(row.global_step)
    return [row.name, row.status, epoch, step, loss, job, row.owner or ""]


def _print_table(rows: list[ExperimentStatus]) -> None:
    header = ["experiment", "status", "epoch", "step", "loss", "job", "owner"]
    table = [header] + [_format(r) for r in rows]
    if not any(row.owner for row in rows):
        table = [line[:-1] for line in table]
    widths = [max(len(line[col]) for line in table) for col in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def run_status(directory: Path, as_json: bool) -> int:
    """Print the status table (or JSON); returns the exit code."""
    rows = collect_status(directory)
    if not rows:
        raise FileNotFoundError(
            f"no experiments or runs under {directory}; run 'mtf sweep' or 'mtf train' first"
        )
    _add_job_states(rows)
    if as_json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        _print_table(rows)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mtf status``."""
    parser = subparsers.add_parser(
        "status",
        help="show the status of a sweep's experiments or of the runs under a folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=Path("experiments"),
        metavar="SWEEP_DIR",
        help="experiments directory of a sweep, or a runs directory (default: ./experiments)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=lambda args: run_status(args.directory, args.json))
