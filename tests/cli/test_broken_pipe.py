"""Console output into a pipe whose reader went away (``mtf demo 2>&1 | head -3``)."""

from __future__ import annotations

import json
import subprocess
import sys

from model_training_framework.cli.main import EXIT_BROKEN_PIPE


def test_training_finishes_when_the_console_reader_goes_away(tmp_path):
    # The first console line after the reader left raised BrokenPipeError out of fit: exit 1
    # before the first checkpoint, the run's work lost. Console output is a side channel.
    process = subprocess.Popen(
        [sys.executable, "-m", "model_training_framework.cli.main", "demo", "--epochs", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    process.stdout.close()  # the reader goes away before the first line (python is starting)
    returncode = process.wait(timeout=300)
    run_dir = tmp_path / "runs" / "demo"
    assert (run_dir / "epoch_2_step_180.ckpt").is_file()
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps[-1] == 180
    assert steps == sorted(steps)
    assert returncode in (0, EXIT_BROKEN_PIPE)
