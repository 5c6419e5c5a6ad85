"""CheckpointManager: atomic files, latest pointer, rotation, best.ckpt, triggers, async saves."""

from __future__ import annotations

import enum
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import is_temp_file
from model_training_framework.trainer.config import CheckpointConfig
from model_training_framework.trainer.state import file_format as checkpoint_io
from model_training_framework.trainer.state.manager import (
    BEST_NAME,
    FORMAT_VERSION,
    LATEST_NAME,
    CheckpointManager,
    describe_checkpoint,
)
from model_training_framework.trainer.state.rng import capture_rng_state, restore_rng_state
from model_training_framework.trainer.state.snapshot import CpuSnapshot

CODE_VERSION = {"commit": "abc123", "dirty": False, "source": "git"}


class FakeClock:
    """Injected clock: tests move time by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_manager(run_dir: Path, clock: FakeClock | None = None, **config) -> CheckpointManager:
    return CheckpointManager(
        CheckpointConfig(**config),
        run_dir,
        code_version=CODE_VERSION,
        clock=clock or FakeClock(),
    )


def payload(value: float = 0.0, size: int = 4) -> dict:
    return {"model": {"weight": torch.full((size,), float(value))}, "trainer": {"note": "x"}}


def weight_in(path: Path) -> float:
    return float(checkpoint_io.read_checkpoint(path)["model"]["weight"][0])


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "exp"


# ---------------------------------------------------------------- files and pointer
def test_save_writes_template_name_with_metadata_and_points_latest_to_it(run_dir):
    manager = make_manager(run_dir)

    path = manager.save(payload(1.0), epoch=2, step=30, metrics={"train/loss": 0.5})

    assert path == run_dir / "epoch_2_step_30.ckpt"
    content = manager.load(path)
    assert content["format_version"] == FORMAT_VERSION
    assert (content["epoch"], content["global_step"]) == (2, 30)
    assert content["metrics"] == {"train/loss": 0.5}
    assert content["code_version"] == CODE_VERSION
    assert content["framework_version"]
    assert content["created_at"]
    assert torch.equal(content["model"]["weight"], torch.full((4,), 1.0))
    assert manager.latest_path() == path


def test_latest_pointer_is_a_relative_symlink_updated_on_every_save(run_dir, tmp_path):
    manager = make_manager(run_dir)
    manager.save(payload(1.0), epoch=0, step=1)
    second = manager.save(payload(2.0), epoch=0, step=2)

    pointer = run_dir / LATEST_NAME
    assert pointer.is_symlink()
    assert os.readlink(pointer) == second.name
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    assert make_manager(moved).latest_path() == moved / second.name


def test_latest_path_is_none_when_its_target_was_deleted(run_dir):
    manager = make_manager(run_dir)
    path = manager.save(payload(), epoch=0, step=1)
    path.unlink()

    assert manager.latest_path() is None


def test_rotation_keeps_the_newest_max_checkpoints(run_dir):
    manager = make_manager(run_dir, max_checkpoints=2)
    for step in range(1, 6):
        manager.save(payload(step), epoch=0, step=step)

    assert [p.name for p in manager.checkpoint_paths()] == [
        "epoch_0_step_4.ckpt",
        "epoch_0_step_5.ckpt",
    ]


def test_rotation_never_deletes_the_file_just_written_even_at_a_lower_step(run_dir):
    manager = make_manager(run_dir, max_checkpoints=1)
    manager.save(payload(9), epoch=0, step=9)

    resumed_path = manager.save(payload(5), epoch=0, step=5)

    assert resumed_path.is_file()
    assert manager.latest_path() == resumed_path


def test_checkpoint_paths_are_sorted_by_step_and_ignore_other_files(run_dir):
    manager = make_manager(run_dir, max_checkpoints=5, monitor_metric="val/loss")
    for step in (10, 2, 33):
        manager.save(payload(step), epoch=0, step=step, metrics={"val/loss": 1.0 / step})
    (run_dir / "notes.txt").write_text("x")
    (run_dir / ".epoch_0_step_99.ckpt.0123456789abcdef.tmp").write_bytes(b"partial")

    assert [p.name for p in manager.checkpoint_paths()] == [
        "epoch_0_step_2.ckpt",
        "epoch_0_step_10.ckpt",
        "epoch_0_step_33.ckpt",
    ]


def test_custom_filename_template_is_parsed_for_rotation(run_dir):
    manager = make_manager(run_dir, max_checkpoints=2, filename_template="ckpt-{step}-e{epoch}.pt")
    for step in (1, 2, 3):
        manager.save(payload(step), epoch=0, step=step)

    assert [p.name for p in manager.checkpoint_paths()] == ["ckpt-2-e0.pt", "ckpt-3-e0.pt"]


@pytest.mark.parametrize(
    "template", ["epoch_{epoch}.ckpt", "{step}_{rank}.ckpt", "sub/{step}.ckpt"]
)
def test_unusable_filename_template_is_refused_with_the_field_name(run_dir, template):
    config = CheckpointConfig().model_construct(filename_template=template)

    with pytest.raises(ValueError, match="filename_template"):
        CheckpointManager(config, run_dir)


def test_other_ranks_write_nothing(run_dir):
    manager = CheckpointManager(CheckpointConfig(), run_dir, is_rank_zero=False, code_version={})

    assert manager.save(payload(), epoch=0, step=1) is None
    assert not run_dir.exists()


def test_stale_temp_files_are_removed_when_a_manager_starts(run_dir):
    run_dir.mkdir(parents=True)
    stale = run_dir / ".epoch_0_step_5.ckpt.0123456789abcdef.tmp"
    stale.write_bytes(b"half a checkpoint")
    unrelated = run_dir / "keep.tmp"
    unrelated.write_bytes(b"x")

    make_manager(run_dir)

    assert not stale.exists()
    assert unrelated.exists()


# ---------------------------------------------------------------- best.ckpt
@pytest.mark.parametrize(
    ("mode", "values", "best_step"),
    [("min", [3.0, 1.0, 2.0, 1.5], 2), ("max", [3.0, 1.0, 4.0, 3.5], 3)],
)
def test_best_checkpoint_follows_the_monitored_metric(run_dir, mode, values, best_step):
    manager = make_manager(run_dir, max_checkpoints=1, monitor_metric="val/loss", monitor_mode=mode)
    for step, value in enumerate(values, start=1):
        manager.save(payload(step), epoch=0, step=step, metrics={"val/loss": value})

    assert manager.best_path() == run_dir / BEST_NAME
    assert manager.load(manager.best_path())["global_step"] == best_step
    assert weight_in(manager.best_path()) == best_step  # survived rotation (max_checkpoints=1)


def test_saves_without_the_monitored_metric_leave_best_alone(run_dir):
    manager = make_manager(run_dir, monitor_metric="val/loss")
    manager.save(payload(1), epoch=0, step=1, metrics={"val/loss": 1.0})
    manager.save(payload(2), epoch=0, step=2, metrics={"train/loss": 0.1})
    manager.save(payload(3), epoch=0, step=3, metrics={"val/loss": float("nan")})

    assert manager.load(manager.best_path())["global_step"] == 1


def test_best_tracking_survives_a_restart_through_the_saved_manager_state(run_dir):
    first = make_manager(run_dir, monitor_metric="val/acc", monitor_mode="max")
    first.save(payload(1), epoch=0, step=1, metrics={"val/acc": 0.9})
    last = first.save(payload(2), epoch=0, step=2, metrics={"val/acc": 0.5})

    restarted = make_manager(run_dir, monitor_metric="val/acc", monitor_mode="max")
    restarted.load_state_dict(restarted.load(last)["checkpoint_manager"])
    restarted.save(payload(3), epoch=0, step=3, metrics={"val/acc": 0.8})

    assert restarted.load(restarted.best_path())["global_step"] == 1


def test_best_value_for_another_metric_is_dropped_with_a_warning(run_dir, caplog):
    first = make_manager(run_dir, monitor_metric="val/loss")
    path = first.save(payload(1), epoch=0, step=1, metrics={"val/loss": 0.1})
    changed = make_manager(run_dir, monitor_metric="val/acc", monitor_mode="max")

    with caplog.at_level(logging.WARNING):
        changed.load_state_dict(changed.load(path)["checkpoint_manager"])

    assert "starts over" in caplog.text
    assert changed.state_dict()["best_value"] is None


def test_manager_state_missing_a_key_is_a_checkpoint_error(run_dir):
    with pytest.raises(CheckpointError, match="best_value"):
        make_manager(run_dir).load_state_dict({"monitor_metric": None, "monitor_mode": "min"})


# ---------------------------------------------------------------- triggers
def test_step_trigger_fires_on_multiples_at_step_boundaries_only(run_dir):
    manager = make_manager(run_dir, save_every_n_steps=3, save_every_n_epochs=None)

    due = [s for s in range(0, 10) if manager.should_save(step=s, epoch_end=False, epoch=0)]

    assert due == [3, 6, 9]
    assert not manager.should_save(step=6, epoch_end=True, epoch=0)


def test_epoch_trigger_counts_epochs_from_one(run_dir):
    manager = make_manager(run_dir, save_every_n_epochs=2)

    due = [e for e in range(6) if manager.should_save(step=100, epoch_end=True, epoch=e)]

    assert due == [1, 3, 5]
    assert not manager.should_save(step=100, epoch_end=False, epoch=1)


def test_minutes_trigger_uses_the_injected_clock_and_restarts_on_save(run_dir):
    clock = FakeClock()
    manager = make_manager(run_dir, clock, save_every_n_epochs=None, save_every_n_minutes=2)

    clock.now_s += 119
    assert not manager.should_save(step=1, epoch_end=False, epoch=0)
    clock.now_s += 1
    assert manager.should_save(step=1, epoch_end=False, epoch=0)
    manager.save(payload(), epoch=0, step=1)
    assert not manager.should_save(step=2, epoch_end=False, epoch=0)
    assert manager.should_save(step=2, epoch_end=False, epoch=0, now_s=clock.now_s + 120)


def test_minutes_timer_restarts_when_state_is_loaded(run_dir):
    clock = FakeClock()
    manager = make_manager(run_dir, clock, save_every_n_minutes=1)
    clock.now_s += 3600

    manager.load_state_dict(manager.state_dict())

    assert not manager.should_save(step=1, epoch_end=False, epoch=0)


def test_no_trigger_configured_never_saves(run_dir):
    manager = make_manager(run_dir, save_every_n_epochs=None)

    assert not any(
        manager.should_save(step=s, epoch_end=end, epoch=s, now_s=1e9)
        for s in range(5)
        for end in (False, True)
    )


# ---------------------------------------------------------------- bad files
def test_truncated_file_error_names_the_file_and_older_checkpoints(run_dir):
    manager = make_manager(run_dir)
    older = manager.save(payload(1, size=10_000), epoch=0, step=1)
    newer = manager.save(payload(2, size=10_000), epoch=0, step=2)
    data = newer.read_bytes()
    newer.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        manager.load(newer)

    assert str(newer) in str(info.value)
    assert older.name in str(info.value)


def test_flipped_bit_inside_tensor_data_is_detected(run_dir):
    manager = make_manager(run_dir)
    path = manager.save(payload(0, size=100_000), epoch=0, step=1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="checksum mismatch"):
        manager.load(path)


def test_missing_file_is_a_checkpoint_error(run_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        make_manager(run_dir).load(run_dir / "nope.ckpt")


def test_plain_state_dict_file_is_refused_as_foreign(run_dir, tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), foreign)

    with pytest.raises(CheckpointError, match="not a model_training_framework checkpoint"):
        make_manager(run_dir).load(foreign)


def test_other_format_version_error_says_found_and_supported(run_dir):
    manager = make_manager(run_dir)
    path = manager.save(payload(), epoch=0, step=1)
    content = torch.load(path, weights_only=True)
    content["format_version"] = 99
    torch.save(content, path)

    with pytest.raises(CheckpointError, match=r"format version 99.*format version 1"):
        manager.load(path)


# ---------------------------------------------------------------- auto-resume fallback
def test_load_latest_valid_returns_the_pointer_target(run_dir):
    manager = make_manager(run_dir)
    manager.save(payload(1), epoch=0, step=1)
    manager.save(payload(2), epoch=0, step=2)

    path, content = manager.load_latest_valid()

    assert path.name == "epoch_0_step_2.ckpt"
    assert float(content["model"]["weight"][0]) == 2.0


def test_corrupt_latest_falls_back_to_the_newest_valid_with_a_warning(run_dir, caplog):
    manager = make_manager(run_dir, max_checkpoints=5)
    for step in (1, 2, 3):
        manager.save(payload(step, size=5_000), epoch=0, step=step)
    for step in (2, 3):
        file = run_dir / f"epoch_0_step_{step}.ckpt"
        file.write_bytes(file.read_bytes()[:100])

    with caplog.at_level(logging.WARNING):
        path, content = manager.load_latest_valid()

    assert path.name == "epoch_0_step_1.ckpt"
    assert content["global_step"] == 1
    assert "epoch_0_step_3.ckpt" in caplog.text
    assert "epoch_0_step_2.ckpt" in caplog.text
    assert "truncated or corrupt" in caplog.text


def test_dangling_latest_pointer_falls_back_with_a_warning(run_dir, caplog):
    manager = make_manager(run_dir)
    manager.save(payload(1), epoch=0, step=1)
    manager.save(payload(2), epoch=0, step=2).unlink()

    with caplog.at_level(logging.WARNING):
        path, _ = manager.load_latest_valid()

    assert path.name == "epoch_0_step_1.ckpt"
    assert "does not exist" in caplog.text


def test_load_latest_valid_is_none_for_an_empty_run(run_dir):
    assert make_manager(run_dir).load_latest_valid() is None


def test_load_latest_valid_raises_when_every_checkpoint_is_damaged(run_dir):
    manager = make_manager(run_dir)
    path = manager.save(payload(), epoch=0, step=1)
    path.write_bytes(b"garbage")

    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        manager.load_latest_valid()


# ---------------------------------------------------------------- payload contents
class Color(str, enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("bad_value", "type_name"),
    [(np.float64(1.0), "numpy.float64"), (Color.RED, "Color"), (np.zeros(2), "ndarray")],
)
def test_payload_value_that_needs_unsafe_unpickling_is_refused_before_writing(
    run_dir, bad_value, type_name
):
    manager = make_manager(run_dir)

    with pytest.raises(CheckpointError, match=rf"payload\['hooks'\]\['x'\].*{type_name}"):
        manager.save({"hooks": {"x": bad_value}}, epoch=0, step=1)
    assert manager.checkpoint_paths() == []


def test_payload_using_a_metadata_key_is_refused(run_dir):
    with pytest.raises(ValueError, match="reserved"):
        make_manager(run_dir).save({"epoch": 3}, epoch=0, step=1)


def test_real_training_states_round_trip_with_weights_only_loading(run_dir):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    onecycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    scaler = torch.amp.GradScaler("cpu")
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    onecycle.step()
    state = {
        "model": model.state_dict(),
        "optimizers": [optimizer.state_dict()],
        "schedulers": [onecycle.state_dict()],
        "scaler": scaler.state_dict(),
        "trainer": {"rng": capture_rng_state(), "schedule": {"cursor": [1, 2]}},
    }
    manager = make_manager(run_dir)

    content = manager.load(manager.save(state, epoch=0, step=1))

    fresh_optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh_optimizer.load_state_dict(content["optimizers"][0])
    assert torch.equal(
        fresh_optimizer.state_dict()["state"][0]["exp_avg"],
        optimizer.state_dict()["state"][0]["exp_avg"],
    )
    expected = torch.rand(3)
    restore_rng_state(content["trainer"]["rng"])
    restore_rng_state(state["trainer"]["rng"])
    assert torch.equal(torch.rand(3), expected)


def test_describe_checkpoint_reports_metadata_positions_and_section_sizes(run_dir):
    manager = make_manager(run_dir)
    state = {
        "model": {"w": torch.zeros(10, 10), "b": torch.zeros(10)},
        "data": {"schedule": {"loader_positions": [3, 4]}},
        "rng": [torch.zeros(5, dtype=torch.uint8)],  # per rank
    }
    path = manager.save(state, epoch=1, step=7)

    info = describe_checkpoint(path)

    assert (info["format_version"], info["epoch"], info["global_step"]) == (FORMAT_VERSION, 1, 7)
    assert info["code_version"] == CODE_VERSION
    assert info["file_size_bytes"] == path.stat().st_size
    assert info["trainer"]["schedule"] == {"loader_positions": [3, 4]}
    assert "shape=[5]" in info["trainer"]["rng"]
    assert info["sections"]["model"] == {"num_tensors": 2, "num_bytes": 440}


# ---------------------------------------------------------------- asynchronous saves
def test_async_save_writes_the_values_at_call_time(run_dir):
    manager = make_manager(run_dir, async_save=True)
    state = payload(1.0, size=1000)

    path = manager.save(state, epoch=0, step=1)
    state["model"]["weight"].add_(41.0)
    manager.wait()

    assert weight_in(path) == 1.0
    assert manager.latest_path() == path


def test_consecutive_async_saves_each_keep_their_own_values(run_dir):
    manager = make_manager(run_dir, async_save=True, max_checkpoints=5)
    state = payload(1.0, size=1000)

    first = manager.save(state, epoch=0, step=1)
    state["model"]["weight"].fill_(2.0)
    second = manager.save(state, epoch=0, step=2)
    state["model"]["weight"].fill_(3.0)
    manager.wait()

    assert (weight_in(first), weight_in(second)) == (1.0, 2.0)


def test_snapshot_keeps_tied_tensors_tied_and_follows_shape_changes():
    snapshot = CpuSnapshot()
    shared = torch.ones(3)
    snapshot.take({"a": shared, "b": shared})

    copy = snapshot.take({"a": shared, "b": shared, "c": [torch.zeros(5)]})
    grown = snapshot.take({"a": torch.ones(4), "b": shared, "c": [torch.zeros(5)]})

    assert copy["a"] is copy["b"]
    assert copy["a"] is not shared
    assert grown["a"].shape == (4,)
    assert torch.equal(grown["b"], torch.ones(3))


@pytest.mark.parametrize(
    "source",
    [
        torch.randn(4, 5).to(torch.bfloat16),
        torch.randn(6, 4).t(),  # non-contiguous view
        torch.arange(10)[::3],
        torch.zeros(0, 3),
        torch.tensor(7),
    ],
    ids=["bf16", "transposed", "strided", "empty", "scalar"],
)
def test_snapshot_copies_equal_the_source_for_any_dtype_and_layout(source):
    snapshot = CpuSnapshot()
    snapshot.take({"t": torch.full_like(source, 3)})

    copy = snapshot.take({"t": source})["t"]

    assert copy.dtype == source.dtype
    assert torch.equal(copy, source)
    assert copy.data_ptr() != source.data_ptr() or source.numel() == 0


class GatedTorchSave:
    """Wraps torch.save: records write order and blocks the first write until released."""

    def __init__(self, real_save) -> None:
        self.real_save = real_save
        self.release = threading.Event()
        self.events: list[str] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, obj, handle) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.events.append(f"start {obj['global_step']}")
        if obj["global_step"] == 1:
            self.release.wait()
        self.real_save(obj, handle)
        with self.lock:
            self.active -= 1
            self.events.append(f"end {obj['global_step']}")


def test_at_most_one_async_save_is_in_flight(run_dir, monkeypatch):
    gate = GatedTorchSave(torch.save)
    monkeypatch.setattr(checkpoint_io.torch, "save", gate)
    manager = make_manager(run_dir, async_save=True)
    manager.save(payload(1), epoch=0, step=1)

    second = threading.Thread(
        target=manager.save, args=(payload(2),), kwargs={"epoch": 0, "step": 2}
    )
    second.start()
    second.join(timeout=0.5)
    still_waiting = second.is_alive()
    gate.release.set()
    second.join()
    manager.wait()

    assert still_waiting
    assert gate.max_active == 1
    assert gate.events == ["start 1", "end 1", "start 2", "end 2"]


def test_background_write_error_is_raised_by_wait_and_earlier_files_survive(run_dir, monkeypatch):
    manager = make_manager(run_dir, async_save=True)
    first = manager.save(payload(1), epoch=0, step=1)
    manager.wait()

    def failing_save(obj, handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", failing_save)
    manager.save(payload(2), epoch=0, step=2)
    with pytest.raises(CheckpointError, match=r"epoch_0_step_2\.ckpt") as info:
        manager.wait()

    assert isinstance(info.value.__cause__, OSError)
    assert manager.latest_path() == first
    assert weight_in(first) == 1.0
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]


def test_failed_synchronous_save_is_a_checkpoint_error_and_keeps_the_best_value(
    run_dir, monkeypatch
):
    manager = make_manager(run_dir, monitor_metric="val/loss")
    manager.save(payload(1), epoch=0, step=1, metrics={"val/loss": 1.0})

    def failing_save(obj, handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", failing_save)
    with pytest.raises(CheckpointError, match=r"no space left on device at .*step_2") as info:
        manager.save(payload(2), epoch=0, step=2, metrics={"val/loss": 0.5})

    assert isinstance(info.value.__cause__, OSError)
    assert manager.state_dict()["best_value"] == 1.0
    assert manager.load(manager.best_path())["global_step"] == 1


def test_background_write_error_is_raised_by_the_next_save(run_dir, monkeypatch):
    manager = make_manager(run_dir, async_save=True)
    real_save = torch.save
    calls = []

    def fail_once(obj, handle):
        calls.append(obj["global_step"])
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real_save(obj, handle)

    monkeypatch.setattr(checkpoint_io.torch, "save", fail_once)
    manager.save(payload(1), epoch=0, step=1)

    with pytest.raises(CheckpointError, match="Input/output error"):
        manager.save(payload(2), epoch=0, step=2)
    manager.save(payload(3), epoch=0, step=3)
    manager.wait()

    assert calls == [1, 3]
    assert manager.latest_path().name == "epoch_0_step_3.ckpt"


# ---------------------------------------------------------------- crash safety (real SIGKILL)
_CHILD = textwrap.dedent(
    """
    import sys, threading, torch
    from pathlib import Path
    from model_training_framework.trainer.state import file_format as checkpoint_io
    from model_training_framework.trainer.state import manager as checkpoint
    from model_training_framework.trainer.state.manager import CheckpointManager
    from model_training_framework.trainer.config import CheckpointConfig

    run_dir, block_in = Path(sys.argv[1]), sys.argv[2]

    def announce_and_block():
        print("BLOCKED", flush=True)
        threading.Event().wait()  # until the parent's SIGKILL

    class SlowFile:
        def __init__(self, handle):
            self.handle, self.num_bytes = handle, 0
        def write(self, data):
            written = self.handle.write(data)
            self.num_bytes += len(data)
            if self.num_bytes > 1_000_000:
                self.handle.flush()
                announce_and_block()
            return written
        def __getattr__(self, name):
            return getattr(self.handle, name)

    real_save = torch.save
    if block_in == "write":
        checkpoint_io.torch.save = lambda obj, handle: real_save(obj, SlowFile(handle))
    else:
        checkpoint.atomic_symlink = lambda *args: announce_and_block()
    manager = CheckpointManager(CheckpointConfig(max_checkpoints=2), run_dir, code_version={})
    manager.save({"model": {"weight": torch.full((2_000_000,), 3.0)}}, epoch=0, step=3)
    """
)


def run_child_until_blocked(script: Path, run_dir: Path, block_in: str) -> None:
    child = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), block_in],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "BLOCKED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize("block_in", ["write", "pointer"])
def test_sigkill_during_a_save_leaves_earlier_checkpoints_and_pointer_intact(
    run_dir, tmp_path, block_in
):
    manager = make_manager(run_dir, max_checkpoints=2)
    manager.save(payload(1, size=300_000), epoch=0, step=1)
    manager.save(payload(2, size=300_000), epoch=0, step=2)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)

    run_child_until_blocked(script, run_dir, block_in)

    for step in (1, 2):
        assert weight_in(run_dir / f"epoch_0_step_{step}.ckpt") == step
    assert manager.latest_path().name == "epoch_0_step_2.ckpt"
    leftovers = [p for p in run_dir.iterdir() if is_temp_file(p)]
    assert bool(leftovers) == (block_in == "write")
    restarted = make_manager(run_dir, max_checkpoints=2)
    assert not [p for p in run_dir.iterdir() if is_temp_file(p)]
    # A kill after the rename but before the pointer moved: the new file is complete, and the
    # newest complete checkpoint wins over the pointer that lags one save behind.
    newest = 3 if block_in == "pointer" else 2
    path, content = restarted.load_latest_valid()
    assert path.name == f"epoch_0_step_{newest}.ckpt"
    assert content["global_step"] == newest
    assert weight_in(path) == float(newest)


_LOOP_CHILD = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from model_training_framework.trainer.state.manager import CheckpointManager
    from model_training_framework.trainer.config import CheckpointConfig

    run_dir, first_step = Path(sys.argv[1]), int(sys.argv[2])
    manager = CheckpointManager(
        CheckpointConfig(max_checkpoints=3, monitor_metric="m"), run_dir, code_version={}
    )
    print("STARTED", flush=True)
    for step in range(first_step, first_step + 10_000):
        manager.save({"model": {"weight": torch.full((1_000_000,), float(step))}}, epoch=0,
                     step=step, metrics={"m": -step})
    """
)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_damages_saved_checkpoints(run_dir, tmp_path):
    script = tmp_path / "loop_child.py"
    script.write_text(_LOOP_CHILD)
    rng = random.Random(1234)
    next_step = 1
    for _ in range(12):
        child = subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(next_step)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "STARTED"
        try:
            child.wait(timeout=rng.uniform(0.05, 1.5))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
        manager = make_manager(run_dir, max_checkpoints=3)
        for path in manager.checkpoint_paths():
            assert weight_in(path) == manager.load(path)["global_step"]
        latest = manager.latest_path()
        if latest is not None:
            next_step = manager.load(latest)["global_step"] + 1
        if manager.best_path() is not None:
            manager.load(manager.best_path())
        assert not [p for p in run_dir.iterdir() if is_temp_file(p)]
