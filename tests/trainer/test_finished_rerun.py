"""A finished run (completed or early-stopped) rerun under the same limits returns at once with
its status and writes nothing to its run directory (SPEC section 10). A rerun that resumes an
unfinished run, or finds it finished, says so once on the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_training_framework.trainer import (
    FitStatus,
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)
from model_training_framework.trainer.state.run_lock import LOCK_NAME

from .fit_helpers import make_loader, mse_step


def _fit(root: Path, stop: str):
    early = {"early_stopping_patience": 1, "early_stopping_min_delta": 1e9}
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(
        GenericTrainerConfig(
            experiment_name="done",
            seed=0,
            checkpoint={"root_dir": str(root)},
            logging={"logger_type": "composite", "composite_loggers": ["console", "tensorboard"]},
            log_loss_every_n_steps=2,
            train_loader_config=MultiDataLoaderConfig(),
            **(early if stop == "early_stopped" else {}),
        ),
        model,
        [torch.optim.SGD(model.parameters(), lr=0.1)],
    )
    trainer.set_training_step(mse_step)
    trainer.set_validation_step(mse_step)
    return trainer.fit(
        [make_loader(16, 0)], [make_loader(16, 1)], max_epochs=2 if stop == "completed" else 20
    )


def _files(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under the run directory (the lock file aside: while a process holds it,
    it names that process) with its modification time and content."""
    return {
        str(path.relative_to(run_dir)): (path.lstat().st_mtime_ns, path.read_bytes())
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.name != LOCK_NAME
    }


@pytest.mark.parametrize("stop", ["completed", "early_stopped"])
def test_a_finished_run_rerun_with_the_same_limits_writes_nothing(tmp_path, capsys, stop):
    first = _fit(tmp_path, stop)
    assert first.status == FitStatus(stop)
    run_dir = tmp_path / "done"
    before = _files(run_dir)
    assert {"metrics.jsonl", "hparams.json"} <= set(before)
    assert any(name.startswith("tensorboard/") for name in before)

    capsys.readouterr()
    again = _fit(tmp_path, stop)

    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "nothing to do" in said  # one line, on the console

    assert (again.status, again.global_step, again.epoch) == (
        first.status,
        first.global_step,
        first.epoch,
    )
    after = _files(run_dir)
    assert sorted(after) == sorted(before)  # no new file (a TensorBoard events file, ...)
    changed = [name for name in before if after[name] != before[name]]
    assert changed == []


# A user's script: two fits of the same run; the second one, with max_epochs 1, finds it
# finished, with max_epochs 2 resumes it. Python logging is left as a fresh interpreter has it
# ("none"), or set up as mtf does ("info": basicConfig at INFO on stderr).
_RERUN_SCRIPT = """
import logging, sys
import torch
from torch.utils.data import DataLoader, TensorDataset
from model_training_framework.trainer import (
    GenericTrainer, GenericTrainerConfig, MultiDataLoaderConfig,
)

root, logger_type, python_logging, rerun_epochs = sys.argv[1:5]
if python_logging == "info":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
for attempt in range(2):
    model = torch.nn.Linear(3, 1)
    trainer = GenericTrainer(
        GenericTrainerConfig(
            experiment_name="done",
            seed=0,
            checkpoint={"root_dir": root},
            logging={"logger_type": logger_type},
            train_loader_config=MultiDataLoaderConfig(),
        ),
        model,
        [torch.optim.SGD(model.parameters(), lr=0.1)],
    )
    trainer.set_training_step(
        lambda t, batch, *_: {"loss": torch.nn.functional.mse_loss(t.model(batch[0]), batch[1])}
    )
    data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
    if attempt == 1:
        print("RERUN", file=sys.stderr, flush=True)
    epochs = 1 if attempt == 0 else int(rerun_epochs)
    trainer.fit([DataLoader(data, batch_size=4)], max_epochs=epochs)
"""


def _rerun_says(root: Path, logger_type: str, python_logging: str, rerun_epochs: int) -> str:
    """Run the script in a fresh interpreter; what it wrote on stderr once the rerun started
    (it writes nothing of the kind on stdout)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _RERUN_SCRIPT,
            str(root),
            logger_type,
            python_logging,
            str(rerun_epochs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "resumed from" not in done.stdout
    return done.stderr.split("RERUN\n", 1)[1]


@pytest.mark.parametrize("python_logging", ["none", "info"])
@pytest.mark.parametrize("logger_type", ["console", "tensorboard"])
def test_a_finished_rerun_says_nothing_to_do_once_on_the_terminal(
    tmp_path, logger_type, python_logging
):
    # Without a console logger the line went only to Python logging at INFO, which shows
    # nothing unless the user set logging up: a rerun in a plain script was silent.
    rerun_said = _rerun_says(tmp_path, logger_type, python_logging, rerun_epochs=1)
    lines = [line for line in rerun_said.splitlines() if "nothing to do" in line]
    assert len(lines) == 1, rerun_said  # on the terminal, once
    assert "the run already finished" in lines[0]


@pytest.mark.parametrize("python_logging", ["none", "info"])
@pytest.mark.parametrize("logger_type", ["console", "tensorboard"])
def test_a_resumed_run_says_where_it_resumed_from_once_on_the_terminal(
    tmp_path, logger_type, python_logging
):
    # The same gap as the finished rerun's: without a console logger the "resumed from" line
    # went only to Python logging at INFO, so a plain script resumed in silence.
    rerun_said = _rerun_says(tmp_path, logger_type, python_logging, rerun_epochs=2)
    lines = [line for line in rerun_said.splitlines() if "resumed from" in line]
    assert len(lines) == 1, rerun_said  # on the terminal, once
    assert "epoch_1_step_2.ckpt at epoch 1, step 2" in lines[0], lines[0]
