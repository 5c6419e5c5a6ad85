"""Sharded checkpoint directories (DcpDirectoryFormat) behind the CheckpointManager, in one
process (DCP without a process group); the 2-process runs are in tests/ddp/test_fsdp_runs.py."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model_training_framework.cli.main import main
from model_training_framework.errors import CheckpointError
from model_training_framework.trainer.state.dcp import (
    STATE_FILE,
    DcpDirectoryFormat,
    consolidate_checkpoint,
)
from model_training_framework.trainer.state.inspect import describe_checkpoint
from model_training_framework.trainer.state.manager import CheckpointManager

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


def _config(**overrides) -> SimpleNamespace:
    values = {
        "save_every_n_steps": 1,
        "save_every_n_epochs": None,
        "save_every_n_minutes": None,
        "max_checkpoints": 2,
        "filename_template": "epoch_{epoch}_step_{step}.ckpt",
        "monitor_metric": "val/loss",
        "monitor_mode": "min",
        "async_save": False,
    }
    return SimpleNamespace(**{**values, **overrides})


def _manager(run_dir: Path, **overrides) -> CheckpointManager:
    return CheckpointManager(
        _config(**overrides),
        run_dir,
        checkpoint_format=DcpDirectoryFormat(),
        code_version={"commit": "abc", "dirty": False},
    )


def _payload(step: int) -> dict:
    return {
        "model": {"layer.weight": torch.full((4, 3), float(step))},
        "optimizers": [{"state.layer.weight.momentum_buffer": torch.full((4, 3), -float(step))}],
        "trainer": {"global_step": step, "loader_names": ["a"]},
    }


def _template() -> dict:
    return {
        "model": {"layer.weight": torch.zeros(4, 3)},
        "optimizers": [
            {
                "state.layer.weight.momentum_buffer": torch.zeros(4, 3),
                "state.other.weight.exp_avg": torch.zeros(1),  # not in the checkpoint
            }
        ],
    }


def _save_steps(manager: CheckpointManager, steps, *, loss=None) -> list[Path]:
    return [
        manager.save(_payload(s), epoch=0, step=s, metrics={"val/loss": loss or 1.0 / s})
        for s in steps
    ]


def test_each_checkpoint_is_one_directory_with_shards_state_and_latest_pointer(tmp_path):
    manager = _manager(tmp_path / "run")
    (path,) = _save_steps(manager, [1])
    assert path.is_dir()
    assert {p.name for p in path.iterdir()} == {".metadata", "__0_0.distcp", STATE_FILE}
    assert manager.latest_path() == path
    assert (tmp_path / "run" / "latest.ckpt").resolve() == path.resolve()
    content = manager.load(path)
    assert content["trainer"] == {"global_step": 1, "loader_names": ["a"]}
    assert content["model"]["layer.weight"].device.type == "meta"  # data stays in the shards
    loaded = manager.checkpoint_format.load_tensors(path, content, _template)
    assert torch.equal(loaded["model"]["layer.weight"], torch.full((4, 3), 1.0))
    assert list(loaded["optimizers"][0]) == ["state.layer.weight.momentum_buffer"]


def test_rotation_removes_whole_directories_and_best_is_an_independent_copy(tmp_path):
    manager = _manager(tmp_path / "run")
    _save_steps(manager, [1])  # best: lowest loss stays step 1 below
    manager.save(_payload(2), epoch=0, step=2, metrics={"val/loss": 5.0})
    manager.save(_payload(3), epoch=0, step=3, metrics={"val/loss": 6.0})
    assert [p.name for p in manager.checkpoint_paths()] == [
        "epoch_0_step_2.ckpt",
        "epoch_0_step_3.ckpt",
    ]
    best = manager.best_path()
    assert best is not None and best.is_dir() and not best.is_symlink()
    assert manager.load(best)["global_step"] == 1
    leftovers = [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_truncated_shard_or_missing_metadata_is_skipped_for_an_older_checkpoint(tmp_path, caplog):
    run_dir = tmp_path / "run"
    manager = _manager(run_dir, max_checkpoints=3)
    older, middle, newest = _save_steps(manager, [1, 2, 3])
    shard = newest / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:10])
    (middle / ".metadata").unlink()
    with pytest.raises(CheckpointError, match="truncated or missing"):
        manager.load(newest)
    path, content = _manager(run_dir).load_latest_valid()
    assert (path, content["global_step"]) == (older, 1)
    assert "skipped 2 checkpoint(s)" in caplog.text and "has no .metadata" in caplog.text


def test_a_torn_temporary_directory_is_never_picked_and_is_removed_by_the_next_run(tmp_path):
    run_dir = tmp_path / "run"
    manager = _manager(run_dir)
    (good,) = _save_steps(manager, [1])
    torn = run_dir / ".epoch_0_step_9.ckpt.0123456789abcdef.tmp"
    torn.mkdir()
    (torn / "__0_0.distcp").write_bytes(b"partial")
    assert manager.load_latest_valid()[0] == good
    _manager(run_dir)  # a new run's manager cleans up
    assert not torn.exists()


def test_a_save_over_an_existing_directory_of_the_same_step_replaces_it(tmp_path):
    manager = _manager(tmp_path / "run")
    (first,) = _save_steps(manager, [1])
    payload = _payload(1)
    payload["trainer"]["global_step"] = 99
    manager.save(payload, epoch=0, step=1)
    assert manager.load(first)["trainer"]["global_step"] == 99


def test_async_save_publishes_after_wait(tmp_path):
    manager = _manager(tmp_path / "run", async_save=True)
    payload = _payload(1)
    path = manager.save(payload, epoch=0, step=1)
    payload["model"]["layer.weight"].add_(100.0)  # training goes on: the save has its copy
    manager.wait()
    loaded = manager.checkpoint_format.load_tensors(path, manager.load(path), _template)
    assert torch.equal(loaded["model"]["layer.weight"], torch.full((4, 3), 1.0))
    assert manager.latest_path() == path


def test_inspect_status_and_consolidate_work_on_sharded_directories(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "sharded"
    _save_steps(_manager(run_dir), [1, 2])
    info = describe_checkpoint(run_dir / "latest.ckpt")
    assert info["global_step"] == 2
    assert info["sections"]["model"] == {"num_tensors": 1, "num_bytes": 48}
    assert info["sections"]["optimizers"]["num_tensors"] == 1
    assert main(["inspect", str(run_dir)]) == 0
    assert main(["inspect", str(run_dir / "epoch_0_step_2.ckpt")]) == 0
    assert "global step 2" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "runs")]) == 0
    assert "checkpointed" in capsys.readouterr().out
    out = tmp_path / "model.pt"
    assert main(["consolidate", str(run_dir), str(out)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.load(out, weights_only=True)
    assert list(model) == ["layer.weight"]
    assert torch.equal(model["layer.weight"], torch.full((4, 3), 2.0))
    with pytest.raises(CheckpointError, match=r"no \.metadata"):
        consolidate_checkpoint(tmp_path, out)
