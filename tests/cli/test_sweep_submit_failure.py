"""``mtf sweep --slurm`` when a later array cannot be submitted at all (sbatch cannot be run:
an OSError, not a refusal): the array submitted before it stays recorded."""

from __future__ import annotations

import json
import os
import stat

import yaml

from model_training_framework.cli.main import main
from model_training_framework.launch.slurm.commands import SlurmCommands


def test_an_array_that_cannot_be_submitted_keeps_the_earlier_ones_recorded(
    project, tmp_path, monkeypatch, capsys
):
    config = project.write_config("base.yaml", training={"max_steps": 2})
    data = yaml.safe_load(config.read_text())
    data["slurm"] = {"mem": "50M", "time": "00:05:00"}
    config.write_text(yaml.safe_dump(data))
    grid = project.root / "grid.yaml"
    linked = [{"slurm.mem": ["50M", "60M"], "optimizer.lr": [0.01, 0.02]}]  # two arrays
    grid.write_text(yaml.safe_dump({"name": "g", "base_config": "base.yaml", "linked": linked}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")  # only for the PATH check
    (bin_dir / "sbatch").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    calls = []

    def sbatch(self, script_path, extra_args=()):
        calls.append(script_path)
        if len(calls) == 1:
            return "7"
        raise OSError(8, "Exec format error", "sbatch")

    monkeypatch.setattr(SlurmCommands, "sbatch", sbatch)
    sweep_dir = project.root / "experiments" / "grid"

    assert main(["sweep", str(grid), "--slurm"]) == 1

    out = capsys.readouterr()
    records = {
        path.parent.name: json.loads(path.read_text())
        for path in sweep_dir.glob("*/submission.json")
    }
    submitted = {name: r["job_id"] for name, r in records.items() if r["job_id"] is not None}
    assert list(submitted.values()) == ["7_0"], (records, out)
    (failed,) = [r for r in records.values() if r["job_id"] is None]
    assert "Exec format error" in failed["error"]
    assert f"{next(iter(submitted))}: job 7_0" in out.out
