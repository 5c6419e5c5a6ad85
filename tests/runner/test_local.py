"""LocalLauncher: same experiment directories as Slurm, N processes at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from model_training_framework.runner import LocalLauncher
from model_training_framework.slurm import read_code_version

JOB = """\
import argparse, os, pathlib, sys, time
parser = argparse.ArgumentParser(); parser.add_argument("--config"); args = parser.parse_args()
exp = pathlib.Path(os.environ["MTF_EXPERIMENT_DIR"])
marks = pathlib.Path(os.environ["MARK_DIR"])
(marks / f"start_{exp.name}").touch()
# report how many experiments were running at the same time as this one
peers = len(list(marks.glob("start_*"))) - len(list(marks.glob("end_*")))
(exp / "peers").write_text(str(peers))
print("config", args.config, "code", os.environ["MTF_CODE_VERSION_FILE"])
(marks / f"end_{exp.name}").touch()
sys.exit(3 if exp.name == "bad" else 0)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "job.py").write_text(JOB)
    (tmp_path / "marks").mkdir()
    return root


def _launcher(project: Path, max_concurrent: int = 1) -> LocalLauncher:
    env = {"MARK_DIR": str(project.parent / "marks")}
    return LocalLauncher(project, project / "experiments", env=env, max_concurrent=max_concurrent)


def test_batch_runs_every_experiment_with_dirs_config_and_logs(project):
    result = _launcher(project).submit_experiment_batch(
        [{"experiment_name": "a"}, {"experiment_name": "b"}], project / "job.py"
    )
    assert result.success_count == 2 and len(result.job_ids) == 2
    assert all(job_id.startswith("local-") for job_id in result.job_ids)
    for item in result.results:
        assert item.exit_code == 0
        out = (item.experiment_dir / "logs" / "local.out").read_text()
        assert f"config {item.experiment_dir / 'config.yaml'} " in out
        assert (item.experiment_dir / "config.yaml").exists()
        assert read_code_version(item.experiment_dir).commit is None  # not a git repo


def test_serial_limit_never_overlaps_processes(project):
    names = ["a", "b", "c"]
    result = _launcher(project, max_concurrent=1).submit_experiment_batch(
        [{"experiment_name": n} for n in names], project / "job.py"
    )
    assert [(item.experiment_dir / "peers").read_text() for item in result.results] == [
        "1",
        "1",
        "1",
    ]


def test_failed_process_is_reported_and_others_still_run(project):
    result = _launcher(project, max_concurrent=2).submit_experiment_batch(
        [{"experiment_name": "bad"}, {"experiment_name": "good"}], project / "job.py"
    )
    assert result.success_count == 1
    (failed,) = result.failed
    assert failed.experiment_name == "bad" and failed.exit_code == 3 and "status 3" in failed.error


def test_dry_run_prepares_but_runs_nothing(project):
    result = _launcher(project).submit_experiment_batch(
        [{"experiment_name": "a"}], project / "job.py", dry_run=True
    )
    assert result.is_dry_run and result.job_ids == []
    assert (result.results[0].experiment_dir / "config.yaml").exists()
    assert not (project.parent / "marks" / "start_a").exists()


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_invalid_max_concurrent_is_rejected(project, value):
    with pytest.raises(ValueError, match="max_concurrent"):
        _launcher(project).submit_experiment_batch(
            [{"experiment_name": "a"}], project / "job.py", value
        )


def test_single_experiment_uses_the_given_python(project):
    launcher = LocalLauncher(
        project,
        project / "experiments",
        python=sys.executable,
        env={"MARK_DIR": str(project.parent / "marks")},
    )
    item = launcher.submit_single_experiment({"experiment_name": "one"}, project / "job.py")
    assert item.is_success and item.job_id.startswith("local-")


EXIT_BY_NAME = """\
import os, pathlib, sys
name = pathlib.Path(os.environ["MTF_EXPERIMENT_DIR"]).name
sys.exit({"ok": 0, "preempted": 3, "interrupted": 130, "crashed": 1}[name])
"""


def test_the_live_log_tells_checkpointed_stops_from_failures(project, caplog):
    """`mtf sweep --local` logs each experiment as its process ends. A run that checkpointed
    and stopped (exit 3 after a preemption signal, 130 after Ctrl-C) was logged as 'failed',
    which made a user think the work was lost; it says what happened and that a rerun
    continues. Only the real failure is logged as failed."""
    (project / "job.py").write_text(EXIT_BY_NAME)
    names = ["ok", "preempted", "interrupted", "crashed"]
    with caplog.at_level("INFO", logger="model_training_framework.launch.local"):
        result = _launcher(project, max_concurrent=2).submit_experiment_batch(
            [{"experiment_name": name} for name in names], project / "job.py"
        )
    assert [item.exit_code for item in result.results] == [0, 3, 130, 1]
    lines = {
        name: [r.getMessage() for r in caplog.records if name in r.getMessage()] for name in names
    }
    assert any("ok: completed" in line for line in lines["ok"]), lines
    for name in ("preempted", "interrupted"):
        assert any(f"{name}: {name} after a checkpoint" in line for line in lines[name]), lines
        assert not any("failed" in line for line in lines[name]), lines
    assert any("crashed failed: process exited with status 1" in line for line in lines["crashed"])
