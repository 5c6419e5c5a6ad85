"""The run directory lock: one owner, a refusal that names it, nothing left behind by the dead."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import threading
import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from model_training_framework.errors import (
    CheckpointError,
    RunDirectoryBusyError,
    RunDirectoryLockError,
)
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
    TrainerHooks,
)
from model_training_framework.trainer.state import run_lock
from model_training_framework.trainer.state.run_lock import (
    LOCK_NAME,
    RunDirectoryLock,
    RunOwner,
    read_lock_state,
)


def test_a_second_lock_on_a_locked_directory_is_refused_naming_directory_and_owner(tmp_path):
    first = RunDirectoryLock(tmp_path / "run")
    first.acquire()
    first.record_owner()
    second = RunDirectoryLock(tmp_path / "run", retry_s=0.0)

    with pytest.raises(RunDirectoryBusyError) as caught:
        second.acquire()

    message = str(caught.value)
    assert str(tmp_path / "run") in message
    assert f"pid {os.getpid()}" in message and f"host {socket.gethostname()}" in message
    assert "this process" in message
    first.release()
    second.acquire()  # free again once released
    second.release()


def test_acquire_writes_no_record_and_record_owner_names_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    lock = RunDirectoryLock(tmp_path / "run")
    lock.acquire()
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""

    lock.record_owner()

    record = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    assert record["slurm_job_id"] == "4242"
    assert record["started"].startswith(time.strftime("%Y", time.gmtime()))
    lock.release()


def test_release_keeps_the_last_owner_record_and_the_state_reads_free(tmp_path):
    with RunDirectoryLock(tmp_path / "run"):
        held = read_lock_state(tmp_path / "run")
    free = read_lock_state(tmp_path / "run")

    assert held.is_held and held.owner is not None and held.owner.pid == os.getpid()
    assert not free.is_held and free.owner == held.owner


def test_reading_the_state_of_a_directory_without_lock_file_creates_nothing(tmp_path):
    state = read_lock_state(tmp_path / "never_ran")

    assert state == run_lock.LockState(is_held=False, owner=None)
    assert not (tmp_path / "never_ran").exists()


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_filesystem_without_locks_is_a_clear_error_not_a_silent_pass(tmp_path, monkeypatch, code):
    def refuse(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(run_lock.fcntl, "flock", refuse)

    with pytest.raises(RunDirectoryLockError, match="does not support file locks") as caught:
        RunDirectoryLock(tmp_path / "run").acquire()
    assert "fault_tolerance.lock_run_directory: false" in str(caught.value)


def test_a_forked_child_does_not_keep_the_lock_of_an_owner_that_died(tmp_path):
    """A SIGKILLed trainer's DataLoader workers (forked) must not keep its lock alive."""
    run_dir = tmp_path / "run"
    read_end, write_end = os.pipe()
    owner = os.fork()
    if owner == 0:  # the owner: lock, fork a long-lived "worker", die
        try:
            os.close(read_end)
            RunDirectoryLock(run_dir).acquire()
            if os.fork() == 0:
                # The worker reports itself once fork has returned here, i.e. after the fork
                # handlers ran (as for a DataLoader worker that is up and running); a pid sent
                # by the owner could arrive before the child has been scheduled at all.
                os.write(write_end, str(os.getpid()).encode())
                time.sleep(60)
                os._exit(0)
        finally:
            os._exit(0)
    os.close(write_end)
    worker_pid = int(os.read(read_end, 64).decode())
    os.close(read_end)
    os.waitpid(owner, 0)
    try:
        os.kill(worker_pid, 0)  # the worker is alive...
        assert not read_lock_state(run_dir).is_held  # ...yet the lock died with its owner
        lock = RunDirectoryLock(run_dir, retry_s=0.0)
        lock.acquire()
        lock.release()
    finally:
        os.kill(worker_pid, signal.SIGKILL)


def test_a_lock_released_unused_removes_what_it_created_and_nothing_else(tmp_path):
    unused = RunDirectoryLock(tmp_path / "runs" / "run")
    unused.acquire()
    unused.release()
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    unused = RunDirectoryLock(tmp_path / "kept")
    unused.acquire()
    unused.release()
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]


def test_a_waiting_lock_takes_the_new_file_when_the_unused_one_was_removed(tmp_path):
    """An owner that removes its unused lock file must not leave a waiter holding the old
    inode while a third process locks a new file at the same path."""
    first = RunDirectoryLock(tmp_path / "run")
    first.acquire()
    waiter = RunDirectoryLock(tmp_path / "run", retry_s=5.0)
    waiting = threading.Thread(target=waiter.acquire)
    waiting.start()
    _wait_until_open_twice(tmp_path / "run" / LOCK_NAME)  # the waiter retries its lock
    first.release()  # unused: removes the file (and the directory) it created
    waiting.join()
    assert waiter.is_held and (tmp_path / "run" / LOCK_NAME).exists()
    with pytest.raises(RunDirectoryBusyError):
        RunDirectoryLock(tmp_path / "run", retry_s=0.0).acquire()
    waiter.release()  # unused too: it removes the file and the directory it made anew
    assert list(tmp_path.iterdir()) == []


def _wait_until_open_twice(path, timeout_s=10.0):
    """Until this process has ``path`` open twice (Linux: /proc/self/fd)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # closed meanwhile
                continue
        if links.count(str(path)) >= 2:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} was not opened twice within {timeout_s} s")


def test_owner_record_round_trips_and_describes_itself():
    owner = RunOwner(host="node7", pid=12, started="2026-01-02T03:04:05+00:00", slurm_job_id="9")

    assert RunOwner.from_record(owner.to_record()) == owner
    assert owner.describe() == "host node7, pid 12, started 2026-01-02T03:04:05+00:00, SLURM job 9"
    with pytest.raises(ValueError, match="not an owner record"):
        RunOwner.from_record("{}")


# ---------------------------------------------------------------- through fit


def _trainer(root, **fault_tolerance) -> GenericTrainer:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    config = GenericTrainerConfig(
        experiment_name="owned",
        seed=0,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(root)},
        logging={"progress_bar": False},
        fault_tolerance=fault_tolerance,
    )
    trainer = GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])

    def step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(trainer.model(x), y)}

    trainer.set_training_step(step)
    return trainer


def _loader():
    return DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=4)


class _Probe(TrainerHooks):
    """Records the lock state seen from inside fit, and tries a second fit there."""

    def __init__(self, second: GenericTrainer | None = None) -> None:
        self.states: list = []
        self.second = second
        self.error: Exception | None = None

    def on_train_start(self, trainer):
        self.states.append(read_lock_state(trainer.run_dir))
        if self.second is not None:
            before = _snapshot(trainer.run_dir)
            try:
                self.second.fit(train_loaders=[_loader()])
            except RunDirectoryBusyError as err:
                self.error = err
            self.unchanged = _snapshot(trainer.run_dir) == before


def _snapshot(folder):
    return {
        path.name: (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def test_fit_holds_the_lock_for_the_whole_fit_and_releases_it(tmp_path):
    trainer = _trainer(tmp_path)
    probe = _Probe()
    trainer.add_hook(probe)

    trainer.fit(train_loaders=[_loader()])

    assert probe.states[0].is_held and probe.states[0].owner.pid == os.getpid()
    assert not read_lock_state(trainer.run_dir).is_held


def test_a_second_fit_on_a_run_in_progress_is_refused_and_writes_nothing(tmp_path):
    second = _trainer(tmp_path)
    first = _trainer(tmp_path)
    probe = _Probe(second)
    first.add_hook(probe)

    first.fit(train_loaders=[_loader()])

    assert probe.error is not None, "the second fit was not refused"
    assert str(first.run_dir) in str(probe.error)
    assert f"pid {os.getpid()}" in str(probe.error)
    assert probe.unchanged, "the refused fit changed files in the run directory"


def test_lock_run_directory_false_trains_without_a_lock(tmp_path):
    trainer = _trainer(tmp_path, lock_run_directory=False)
    probe = _Probe()
    trainer.add_hook(probe)

    trainer.fit(train_loaders=[_loader()])

    assert not probe.states[0].is_held
    assert not (trainer.run_dir / LOCK_NAME).exists()


def test_a_fit_refused_for_a_missing_checkpoint_leaves_no_run_directory(tmp_path):
    trainer = _trainer(tmp_path / "runs")
    with pytest.raises(CheckpointError, match="does not exist"):
        trainer.fit(train_loaders=[_loader()], resume_from_checkpoint=tmp_path / "gone.ckpt")
    assert list(tmp_path.iterdir()) == [], "a rejected run must write nothing"


def test_a_fit_refused_in_a_directory_without_lock_file_leaves_it_as_it_was(tmp_path):
    run_dir = tmp_path / "owned"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("made by hand")
    before = _snapshot(run_dir)
    with pytest.raises(CheckpointError, match="does not exist"):
        _trainer(tmp_path).fit(
            train_loaders=[_loader()], resume_from_checkpoint=tmp_path / "gone.ckpt"
        )
    assert _snapshot(run_dir) == before and not (run_dir / LOCK_NAME).exists()
