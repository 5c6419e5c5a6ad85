"""GenericTrainer: batches moved to the device, warm start, resume errors and announcements."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.trainer import (
    TrainerHooks,
    WarmStartResult,
)
from model_training_framework.trainer.data.devices import move_to_device

from .fit_helpers import (
    make_config,
    make_loader,
    make_trainer,
    mse_step,
)


# ---------------------------------------------------------------- devices, warm start, resume errors
@dataclass
class _Pair:
    x: torch.Tensor
    meta: str


def test_batches_are_moved_through_nested_containers():
    batch = {"a": (torch.zeros(2), [torch.ones(1)]), "b": _Pair(torch.zeros(3), "keep"), "c": 5}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["a"][0].is_meta and moved["a"][1][0].is_meta and moved["b"].x.is_meta
    assert moved["b"].meta == "keep" and moved["c"] == 5 and isinstance(moved["a"], tuple)


def test_warm_start_loads_weights_only_when_starting_fresh(tmp_path):
    source = torch.nn.Linear(3, 1)
    calls = []

    def warm(trainer, path):
        calls.append(path)
        return WarmStartResult(source.state_dict())

    model = torch.nn.Linear(3, 1)
    trainer = make_trainer(make_config(tmp_path), model)
    trainer.set_warm_start_loader(warm)
    seen_start = []

    class Probe(TrainerHooks):
        def on_train_start(self, trainer):
            seen_start.append(torch.equal(trainer.unwrapped_model.weight.cpu(), source.weight))

    trainer.add_hook(Probe())
    trainer.fit([make_loader()], max_epochs=1)
    assert seen_start == [True] and len(calls) == 1
    again = make_trainer(make_config(tmp_path), torch.nn.Linear(3, 1))
    again.set_warm_start_loader(warm)
    again.fit([make_loader()], max_epochs=2)  # resumes: no warm start
    assert len(calls) == 1


def test_checkpoint_of_a_different_model_shape_is_a_clear_error(tmp_path):
    make_trainer(make_config(tmp_path)).fit([make_loader()], max_epochs=1)
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not fit this run") as caught:
        make_trainer(make_config(tmp_path), model).fit([make_loader()], max_epochs=2)
    assert "model.weight: [1, 3] -> [2, 3]" in str(caught.value)
    assert "model.bias: [1] -> [2]" in str(caught.value)


def test_corrupt_latest_checkpoint_falls_back_to_an_older_one(tmp_path, caplog):
    cfg = make_config(tmp_path, checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 1})
    make_trainer(cfg).fit([make_loader()], max_epochs=1)
    newest = sorted((tmp_path / "t").glob("epoch_*_step_2.ckpt"))
    assert newest
    for path in newest:
        path.write_bytes(path.read_bytes()[:100])
    trainer = make_trainer(
        make_config(tmp_path, checkpoint={"root_dir": str(tmp_path), "save_every_n_steps": 1})
    )
    seen = []
    trainer.set_training_step(lambda t, b, *a: seen.append(a[0]) or mse_step(t, b, *a))
    result = trainer.fit([make_loader()], max_epochs=1)
    assert "step_2" in caplog.text and result.global_step == 2 and seen == [1]


def test_explicit_corrupt_checkpoint_raises(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        make_trainer(make_config(tmp_path)).fit([make_loader()], resume_from_checkpoint=bad)


def test_warm_start_from_config_dotted_path(tmp_path, monkeypatch):
    import sys
    import types

    source = torch.nn.Linear(3, 1)
    module = types.ModuleType("warm_fixture_mod")

    def load(trainer, path):
        assert path == "weights.pt"
        return WarmStartResult(source.state_dict(), strict=True)

    module.load = load
    monkeypatch.setitem(sys.modules, "warm_fixture_mod", module)
    model = torch.nn.Linear(3, 1)
    cfg = make_config(
        tmp_path,
        warm_start={"loader_class": "warm_fixture_mod.load", "checkpoint_path": "weights.pt"},
    )
    seen = []

    class Probe(TrainerHooks):
        def on_train_start(self, trainer):
            seen.append(torch.equal(trainer.unwrapped_model.weight.cpu(), source.weight))

    trainer = make_trainer(cfg, model)
    trainer.add_hook(Probe())
    trainer.fit([make_loader()])
    assert seen == [True]


def test_a_plain_api_resume_is_announced_on_the_console_by_default(tmp_path, capsys):
    loader = make_loader(n=16)
    make_trainer(make_config(tmp_path, log_loss_every_n_steps=50)).fit([loader], max_steps=2)
    assert "resumed from" not in capsys.readouterr().err
    result = make_trainer(make_config(tmp_path, log_loss_every_n_steps=50)).fit(
        [loader], max_steps=4
    )
    err = capsys.readouterr().err
    assert result.global_step == 4
    assert f"resumed from {tmp_path / 't' / 'epoch_0_step_2.ckpt'}" in err, err
    assert "at epoch 0, step 2" in err, err
