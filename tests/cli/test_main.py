"""``mtf`` itself: help for every command, one-line errors, exit codes."""

from __future__ import annotations

import os
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


def test_output_piped_into_a_reader_that_quit_ends_quietly(tmp_path):
    """``mtf status runs | head -1``: head quits, the next write gets EPIPE. mtf stops quietly
    with the shell's SIGPIPE status, as ``cat`` or ``git log`` do, instead of printing
    ``mtf: error: [Errno 32] Broken pipe`` and exiting with the bad-input code 2."""
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text('{"status": "completed", "epoch": 1, "global_step": 4}')
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before mtf writes its first line
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "model_training_framework.cli.main", "status", "runs"],
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert completed.stderr == ""
    assert completed.returncode == cli_main.EXIT_BROKEN_PIPE == 141


def test_a_broken_pipe_that_is_not_stdout_is_still_reported(monkeypatch, capfd):
    """Only a closed stdout ends quietly: a BrokenPipeError from elsewhere (a subprocess, a
    DataLoader worker) is an error like any other."""
    from model_training_framework.cli import status

    def broken(directory, as_json):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(status, "run_status", broken)
    assert cli_main.main(["status", "runs"]) == cli_main.EXIT_ERROR
    assert capfd.readouterr().err == "mtf: error: [Errno 32] Broken pipe\n"


def test_sweep_help_names_the_folder_it_really_uses(capsys):
    """Experiment directories go to experiments/<grid file name>/ (grid.yaml: experiments/grid),
    not to the grid's `name:` key (spirals_sweep in examples/production/grid.yaml); the help of
    --experiments-dir said '<grid name>'."""
    with pytest.raises(SystemExit):
        cli_main.main(["sweep", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: <project root>/experiments/<grid file name without .yaml>" in help_text
