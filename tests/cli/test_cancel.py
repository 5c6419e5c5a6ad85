"""``mtf cancel`` against stand-in Slurm commands: every job is attempted, failures reported.

The real-Slurm behaviour (requeue off, then scancel; the job stays CANCELLED) is covered by
tests/cli/test_slurm_sweep_jobs.py; here ``squeue``, ``scontrol`` and ``scancel`` are small
scripts first on PATH, so that one job can fail as it would when it ended in between.
"""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from model_training_framework.cli.main import EXIT_FAILED, main
from model_training_framework.launch.slurm.submissions import write_submission

_FAKE = """\
#!/bin/sh
echo "$0 $@" >> '{calls}'
{body}
"""
_SQUEUE = "printf '%s\\n' '5_0|RUNNING|None|g' '5_1|RUNNING|None|g' '5_2|PENDING|Priority|g'"
_SCONTROL_FAILS_FOR_5_1 = """\
case "$*" in
  *JobId=5_1*) echo "scontrol: error: Job/step already completing or completed" >&2; exit 1 ;;
esac"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """squeue lists jobs 5_0..5_2 as active; scontrol update fails for 5_1; calls are logged."""
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [
        ("squeue", _SQUEUE),
        ("scontrol", _SCONTROL_FAILS_FOR_5_1),
        ("scancel", ""),
    ]:
        script = bin_dir / name
        script.write_text(_FAKE.format(calls=calls, body=textwrap.dedent(body)))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def _sweep(root: Path) -> Path:
    sweep_dir = root / "experiments" / "grid"
    for task in range(3):
        experiment_dir = sweep_dir / f"exp_{task}"
        experiment_dir.mkdir(parents=True)
        write_submission(experiment_dir, f"5_{task}", experiment_dir / "job.sbatch.sh")
    return sweep_dir


def _cancelled(calls: Path) -> list[str]:
    return [line.split()[-1] for line in calls.read_text().splitlines() if "/scancel " in line]


def test_a_job_that_cannot_be_cancelled_does_not_stop_the_others(tmp_path, fake_slurm, capsys):
    sweep_dir = _sweep(tmp_path)

    assert main(["cancel", str(sweep_dir)]) == EXIT_FAILED

    out, err = capsys.readouterr()
    assert _cancelled(fake_slurm) == ["5_0", "5_2"]  # never scancel without requeue off
    assert "exp_0: job 5_0 (RUNNING) cancelled" in out
    assert "exp_2: job 5_2 (PENDING) cancelled" in out
    assert "exp_1: job 5_1 (RUNNING) not cancelled" in err
    assert "already completing or completed" in err
    assert "1 of 3 jobs could not be cancelled: exp_1" in err


def test_named_experiments_are_all_attempted(tmp_path, fake_slurm, capsys):
    sweep_dir = _sweep(tmp_path)

    assert main(["cancel", str(sweep_dir), "exp_1", "exp_2"]) == EXIT_FAILED

    assert _cancelled(fake_slurm) == ["5_2"]
    assert "1 of 2 jobs could not be cancelled: exp_1" in capsys.readouterr().err


def test_every_job_cancelled_exits_zero(tmp_path, fake_slurm, capsys):
    sweep_dir = _sweep(tmp_path)

    assert main(["cancel", str(sweep_dir), "exp_0", "exp_2"]) == 0

    assert _cancelled(fake_slurm) == ["5_0", "5_2"]
    assert capsys.readouterr().err == ""
