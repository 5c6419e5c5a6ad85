"""Checkpoints written by earlier versions of the framework: they resume, or fail clearly.

``fixtures/checkpoint_v1.ckpt`` and the sharded ``fixtures/checkpoint_v1_sharded.ckpt/``
(format version 1) were written by this module's ``write_fixture`` with the framework as of commit 5703c75 (before checkpoint state became a
registry): ``python -m tests.trainer.test_checkpoint_versions`` from the repository root.
The run is :func:`fixture_run` stopped by ``max_steps=STOP_STEP``; resuming it with today's
framework must restore what it recorded and continue with the same data order as an
uninterrupted run.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from model_training_framework.cli.main import main
from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.state.dcp import consolidate_checkpoint
from model_training_framework.trainer.state.file_format import FORMAT_VERSION, read_checkpoint

from .hook_fixtures import ScaledCounter
from .resume_utils import RunSpec, assert_states_equal, indexed_dataset, make_trainer, small_model

FIXTURES = Path(__file__).parent / "fixtures"
V1_FILE = FIXTURES / "checkpoint_v1.ckpt"
V1_SHARDED = FIXTURES / "checkpoint_v1_sharded.ckpt"  # distributed.strategy: fsdp
STOP_STEP = 20  # epoch 1, 4 batches in: a round-robin epoch is 10 + 6 = 16 batches
MAX_EPOCHS = 2  # the fixture's run had 3; its checkpoint does not record them


def fixture_run(root: Path, strategy: str = "ddp") -> RunSpec:
    """Two loaders, a scheduler, validation, early stopping and a stateful hook."""
    config = GenericTrainerConfig(
        distributed={"strategy": strategy},
        experiment_name="v1",
        seed=7,
        train_loader_config=MultiDataLoaderConfig(dataloader_names=["a", "b"]),
        checkpoint={"root_dir": str(root), "save_every_n_epochs": None},
        log_loss_every_n_steps=1,
        early_stopping_patience=10,
    )
    model = small_model()
    loaders = [
        DataLoader(indexed_dataset(37, seed=1), batch_size=4, shuffle=True),
        DataLoader(indexed_dataset(23, seed=2), batch_size=4, shuffle=True),
    ]
    val = [DataLoader(indexed_dataset(16, seed=3), batch_size=8)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    return RunSpec(config, model, [optimizer], loaders, val, [scheduler], max_epochs=MAX_EPOCHS)


def fixture_trainer(root: Path, strategy: str = "ddp"):
    spec = fixture_run(root, strategy)
    trainer, recorder = make_trainer(spec)
    counter = ScaledCounter(step=2)
    trainer.add_hook(counter)
    return spec, trainer, recorder, counter


def write_fixture(target: Path, strategy: str) -> None:
    """Train the fixture run to ``STOP_STEP`` and copy its checkpoint to ``target``."""
    root = target.parent / "_fixture_run"
    spec, trainer, _, _ = fixture_trainer(root, strategy)
    result = trainer.fit(spec.train_loaders, spec.val_loaders, spec.max_epochs, STOP_STEP)
    copy = shutil.copytree if strategy == "fsdp" else shutil.copyfile
    copy(result.checkpoint_path, target)
    shutil.rmtree(root)


class _StateAtStart(TrainerHooks):
    """What the trainer holds when training starts (after the resume)."""

    def __init__(self, schedulers):
        self._schedulers = schedulers

    def on_train_start(self, trainer):
        self.step, self.epoch = trainer.global_step, trainer.current_epoch
        self.model = {k: v.clone() for k, v in trainer.unwrapped_model.state_dict().items()}
        self.optimizers = copy.deepcopy([opt.state_dict() for opt in trainer.optimizers])
        self.schedulers = copy.deepcopy([s.state_dict() for s in self._schedulers])


def test_a_version_1_checkpoint_resumes_with_its_state_and_the_same_data_order(tmp_path):
    spec, full, full_recorder, _ = fixture_trainer(tmp_path / "full")
    full_result = full.fit(spec.train_loaders, spec.val_loaders, spec.max_epochs)
    spec, resumed, recorder, counter = fixture_trainer(tmp_path / "resumed")
    probe = _StateAtStart(spec.schedulers)
    resumed.add_hook(probe)

    result = resumed.fit(
        spec.train_loaders, spec.val_loaders, spec.max_epochs, resume_from_checkpoint=V1_FILE
    )

    saved = torch.load(V1_FILE, weights_only=True)
    assert (probe.step, probe.epoch) == (STOP_STEP, 1)
    assert_states_equal(saved["model"], probe.model, "model")
    assert_states_equal(saved["optimizers"], probe.optimizers, "optimizers")
    assert_states_equal(saved["schedulers"], probe.schedulers, "schedulers")
    assert counter.count == 2 * MAX_EPOCHS  # restored (2 after epoch 0), then 2 per epoch
    assert result.global_step == full_result.global_step
    assert recorder.seen == full_recorder.seen[STOP_STEP:]
    assert result.data_fingerprint == full_result.data_fingerprint


def check_sharded_resume(root: Path) -> None:
    """The sharded fixture resumes as the file does (run in a process of its own: FSDP keeps
    its process group after ``fit``)."""
    spec, full, full_recorder, _ = fixture_trainer(root / "full", "fsdp")
    full_result = full.fit(spec.train_loaders, spec.val_loaders, spec.max_epochs)
    spec, resumed, recorder, counter = fixture_trainer(root / "resumed", "fsdp")
    probe = _StateAtStart(spec.schedulers)
    resumed.add_hook(probe)

    result = resumed.fit(
        spec.train_loaders, spec.val_loaders, spec.max_epochs, resume_from_checkpoint=V1_SHARDED
    )

    saved_model = torch.load(consolidate_checkpoint(V1_SHARDED, root / "model.pt"))
    resumed_model = {key: value.full_tensor() for key, value in probe.model.items()}
    assert (probe.step, probe.epoch) == (STOP_STEP, 1)
    assert_states_equal(saved_model, resumed_model, "model")
    assert counter.count == 2 * MAX_EPOCHS
    assert result.global_step == full_result.global_step
    assert recorder.seen == full_recorder.seen[STOP_STEP:]
    assert result.data_fingerprint == full_result.data_fingerprint


@pytest.mark.ddp
def test_a_version_1_sharded_checkpoint_resumes_with_its_state_and_the_same_data_order(tmp_path):
    repo = Path(__file__).parents[2]
    code = (
        "from pathlib import Path; from tests.trainer.test_checkpoint_versions import "
        f"check_sharded_resume; check_sharded_resume(Path({str(tmp_path)!r}))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_version_1_file_is_read_in_the_current_layout():
    content = read_checkpoint(V1_FILE)

    assert content["format_version"] == FORMAT_VERSION
    assert content["train_state"]["global_step"] == STOP_STEP
    assert content["run"]["loader_names"] == ["a", "b"]
    assert len(content["rng"]) == len(content["streams"]) == 1  # one rank
    assert "trainer" not in content


def test_a_damaged_version_1_file_is_a_checkpoint_error_naming_what_it_lacks(tmp_path):
    content = torch.load(V1_FILE, weights_only=True)
    del content["trainer"]
    damaged = tmp_path / "damaged.ckpt"
    torch.save(content, damaged)

    with pytest.raises(CheckpointError, match=r"format version 1 but lacks its entry 'trainer'"):
        read_checkpoint(damaged)


@pytest.mark.parametrize("path", [V1_FILE, V1_SHARDED], ids=["file", "sharded"])
def test_mtf_inspect_describes_a_version_1_checkpoint(path, capsys):
    assert main(["inspect", str(path)]) == 0

    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert ["progress", f"1 epoch(s) completed, global step {STOP_STEP}"] in lines
    assert [text.split(":")[0] for label, text in lines if label == "loader"] == ["a", "b"]
    assert any(label == "schedule" for label, _ in lines)


if __name__ == "__main__":
    FIXTURES.mkdir(exist_ok=True)
    write_fixture(V1_FILE, "ddp")
    write_fixture(V1_SHARDED, "fsdp")  # one process: a sharded checkpoint of world size 1
