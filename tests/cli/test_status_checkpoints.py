"""`mtf status` lists runs started from Python (checkpoints but no status.json) and tells
running runs (their lock is held) from stale ones (recorded running, lock free)."""

from __future__ import annotations

import json
import os

import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.cli.main import main
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)
from model_training_framework.trainer.state.run_lock import RunDirectoryLock

from .conftest import experiment_dict


def test_status_reads_epoch_and_step_from_the_latest_checkpoint(tmp_path, capsys):
    model = torch.nn.Linear(2, 1)
    config = GenericTrainerConfig(
        experiment_name="api_run",
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path / "runs")},
        log_loss_every_n_steps=1,
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])
    trainer.set_training_step(
        lambda t, batch, *a: {"loss": torch.nn.functional.mse_loss(t.model(batch[0]), batch[1])}
    )
    data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
    trainer.fit([DataLoader(data, batch_size=4)], max_epochs=2)
    capsys.readouterr()

    assert main(["status", str(tmp_path / "runs")]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:4] == ["api_run", "checkpointed", "2", "4"]
    assert row[4].startswith("train/loss=")


def _status_rows(capsys, folder) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["status", str(folder), "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_a_locked_run_is_running_and_a_recorded_running_run_with_a_free_lock_is_stale(
    tmp_path, capsys
):
    runs = tmp_path / "runs"
    for name in ("live", "dead", "done"):
        (runs / name).mkdir(parents=True)
    (runs / "live" / "status.json").write_text(json.dumps({"status": "preempted"}))
    (runs / "dead" / "status.json").write_text(json.dumps({"status": "running", "pid": 1}))
    (runs / "done" / "status.json").write_text(json.dumps({"status": "completed"}))
    with RunDirectoryLock(runs / "dead"):  # its owner ran once and is gone now
        pass
    with RunDirectoryLock(runs / "done"):
        pass
    with RunDirectoryLock(runs / "live"), RunDirectoryLock(runs / "fresh"):
        rows = _status_rows(capsys, runs)
        table = _table(capsys, runs)

    assert rows["live"]["status"] == "running"
    assert f"pid {os.getpid()}" in rows["live"]["owner"]
    assert rows["fresh"]["status"] == "running"  # locked, nothing written yet
    assert rows["dead"]["status"] == "stale"
    assert rows["dead"]["owner"].endswith("(exited)")
    assert (rows["done"]["status"], rows["done"]["owner"]) == ("completed", None)
    assert table[0] == ["experiment", "status", "epoch", "step", "loss", "job", "owner"]


def test_a_recorded_running_run_without_a_lock_file_keeps_its_recorded_status(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "old"  # written before run directories had locks
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"status": "running"}))

    assert _status_rows(capsys, tmp_path / "runs")["old"]["status"] == "running"
    assert _table(capsys, tmp_path / "runs")[0][-1] == "job"  # no owner column


def _table(capsys, folder) -> list[list[str]]:
    capsys.readouterr()
    assert main(["status", str(folder)]) == 0
    return [line.split() for line in capsys.readouterr().out.splitlines()]


PROBE_STEP = """
from model_training_framework.cli.main import main
from {module} import training_step as _training_step


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    if trainer.global_step == 11 and batch_idx == 1:  # 11 steps done: what does status say?
        main(["status", "runs", "--json"])
    return _training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name)
"""


def test_a_running_run_shows_its_last_logged_epoch_step_and_loss(project, capsys):
    probe = f"probe_{project.module}"
    (project.root / f"{probe}.py").write_text(PROBE_STEP.format(module=project.module))
    model = {**experiment_dict(project.module)["model"], "training_step": f"{probe}.training_step"}
    config = project.write_config(model=model, log_loss_every_n_steps=1)

    assert main(["train", str(config)]) == 0

    out = capsys.readouterr().out
    row = json.loads(out[out.index("[") : out.index("]") + 1])[0]
    assert (row["name"], row["status"]) == ("tiny", "running")
    records = [json.loads(line) for line in (project.run_dir() / "metrics.jsonl").open()]
    validated = [r for r in records if r["step"] <= 11 and "val/loss" in r]
    assert (row["epoch"], row["global_step"]) == (1, 11)  # the last step logged (8 per epoch)
    assert (row["loss_key"], row["loss"]) == ("val/loss", validated[-1]["val/loss"])  # step 8
