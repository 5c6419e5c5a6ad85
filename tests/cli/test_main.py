"""``mtf`` itself: help for every command, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model_training_framework.cli import main as cli_main
from model_training_framework.experiment.exit_codes import exit_code_for
from model_training_framework.trainer import FitStatus

COMMANDS = ["train", "sweep", "status", "resume", "plot", "inspect", "consolidate", "demo"]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"\n    {command} " in out
    assert "3 preempted" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_its_usage(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mtf {command}")
    assert len(out.splitlines()) > 5


def test_errors_are_one_line_without_traceback_in_a_real_process(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "model_training_framework.cli.main", "inspect", "missing.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == cli_main.EXIT_ERROR
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith("mtf: error: checkpoint missing.ckpt does not exist")
    assert "Traceback" not in completed.stderr


def test_help_does_not_import_torch():
    code = (
        "import sys; from model_training_framework.cli.main import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (FitStatus.COMPLETED, 0),
        (FitStatus.EARLY_STOPPED, 0),
        (FitStatus.PREEMPTED, cli_main.EXIT_PREEMPTED),
        (FitStatus.INTERRUPTED, cli_main.EXIT_INTERRUPTED),
    ],
)
def test_fit_status_maps_to_a_distinct_exit_code(status, code):
    assert exit_code_for(status) == code
    assert exit_code_for(status.value) == code


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="unknown fit status 'exploded'"):
        exit_code_for("exploded")
