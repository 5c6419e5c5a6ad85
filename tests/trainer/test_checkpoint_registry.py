"""Checkpoint state is one registry of ``Stateful`` entries, saved and loaded symmetrically.

Loading is strict: an entry of the checkpoint that nothing in this run restores, and an entry
this run needs that the checkpoint lacks, are both a ``CheckpointError`` naming the entries.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.config import CheckpointConfig
from model_training_framework.trainer.state.file_format import read_checkpoint, write_checkpoint
from model_training_framework.trainer.state.manager import CheckpointManager
from model_training_framework.trainer.state.registry import (
    PerRank,
    SingleProcess,
    load_state,
    save_state,
)

from .resume_utils import (
    RunSpec,
    basic_config,
    indexed_dataset,
    make_trainer,
    small_model,
)


class Box:
    """A ``Stateful`` holding one value."""

    def __init__(self, value=None):
        self.value = value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_every_entry_round_trips_under_its_own_key():
    saved = save_state(
        {"a": Box(1), "b": Box([2, 3]), "c": PerRank(Box(4), SingleProcess())}, SingleProcess()
    )
    fresh = {"a": Box(), "b": Box(), "c": PerRank(Box(), SingleProcess())}

    load_state(fresh, saved, "ckpt")()

    assert saved == {"a": {"value": 1}, "b": {"value": [2, 3]}, "c": [{"value": 4}]}
    assert [fresh[key].value for key in "ab"] == [1, [2, 3]]
    assert fresh["c"].local.value == 4


def test_an_entry_nothing_restores_is_a_checkpoint_error_naming_it():
    saved = save_state({"a": Box(1), "ema": Box(2)}, SingleProcess())

    with pytest.raises(CheckpointError, match=r"ckpt holds \['ema'\].*nothing in this run"):
        load_state({"a": Box()}, saved, "ckpt")


def test_an_entry_missing_from_the_checkpoint_is_a_checkpoint_error_naming_it():
    saved = save_state({"a": Box(1)}, SingleProcess())

    with pytest.raises(CheckpointError, match=r"ckpt lacks \['scaler'\]"):
        load_state({"a": Box(), "scaler": Box()}, saved, "ckpt")


def test_nothing_is_loaded_when_the_entries_do_not_match():
    saved = save_state({"a": Box(1), "ema": Box(2)}, SingleProcess())
    fresh = Box("fresh")

    with pytest.raises(CheckpointError):
        load_state({"a": fresh}, saved, "ckpt")
    assert fresh.value == "fresh"


def test_deferred_entries_load_when_the_returned_function_is_called():
    saved = save_state({"a": Box(1), "rng": Box(2)}, SingleProcess())
    fresh = {"a": Box(), "rng": Box()}

    finish = load_state(fresh, saved, "ckpt", defer=("rng",))
    assert (fresh["a"].value, fresh["rng"].value) == (1, None)
    finish()
    assert fresh["rng"].value == 2


# ---------------------------------------------------------------- a real trainer
def _run(root: Path, name: str = "run", *, scheduler: bool = False) -> RunSpec:
    model = small_model()
    loaders = [DataLoader(indexed_dataset(24, seed=1), batch_size=4, shuffle=True)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    schedulers = [torch.optim.lr_scheduler.StepLR(optimizer, 2)] if scheduler else None
    config = basic_config(root, name)
    return RunSpec(config, model, [optimizer], loaders, schedulers=schedulers, max_epochs=2)


def _fit(spec: RunSpec, **kwargs):
    trainer, _ = make_trainer(spec)
    return trainer.fit(spec.train_loaders, max_epochs=spec.max_epochs, **kwargs)


def _edited_checkpoint(tmp_path: Path, edit) -> Path:
    """A checkpoint of a run stopped at step 3, changed by ``edit(content)``."""
    path = _fit(_run(tmp_path / "first"), max_steps=3).checkpoint_path
    content = read_checkpoint(path)
    edit(content)
    edited = tmp_path / "edited.ckpt"
    write_checkpoint(edited, content)
    return edited


def test_resuming_a_checkpoint_with_an_entry_this_run_lacks_is_refused(tmp_path):
    path = _edited_checkpoint(tmp_path, lambda content: content.update(ema={"decay": 0.9}))

    with pytest.raises(CheckpointError, match=r"holds \['ema'\] that nothing in this run"):
        _fit(_run(tmp_path / "second"), resume_from_checkpoint=path)


def test_resuming_a_checkpoint_that_lacks_an_entry_is_refused(tmp_path):
    path = _edited_checkpoint(tmp_path, lambda content: content.pop("scaler"))

    with pytest.raises(CheckpointError, match=r"lacks \['scaler'\]"):
        _fit(_run(tmp_path / "second"), resume_from_checkpoint=path)


def test_a_scheduler_added_since_the_checkpoint_is_refused_with_the_fix(tmp_path):
    path = _fit(_run(tmp_path / "first"), max_steps=3).checkpoint_path

    with pytest.raises(CheckpointError, match=r"0 scheduler.*this run has 1.*same schedulers"):
        _fit(_run(tmp_path / "second", scheduler=True), resume_from_checkpoint=path)


def test_the_checkpoint_manager_restores_its_own_state_from_a_checkpoint(tmp_path):
    config = CheckpointConfig(monitor_metric="val/loss")
    manager = CheckpointManager(config, tmp_path, code_version={"commit": None})
    path = manager.save({"model": {}}, epoch=0, step=1, metrics={"val/loss": 0.5})
    restarted = CheckpointManager(config, tmp_path, code_version={"commit": None})

    restarted.restore(restarted.load(path))

    assert restarted.state_dict()["best_value"] == 0.5
