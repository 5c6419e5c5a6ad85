"""Run directory ownership with real processes: a live run is never disturbed by a second one,
a SIGKILLed one never blocks its own resume, and a changed configuration is caught on resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from model_training_framework.cli.main import main as mtf
from model_training_framework.trainer.state.run_lock import read_lock_state

from .resume_utils import assert_states_equal

SCRIPT = Path(__file__).parent / "scripts" / "train_script.py"
MTF = Path(sys.executable).with_name("mtf")
TIMEOUT_S = 180
pytestmark = pytest.mark.slow

COMPONENTS = """
import os
import time

import torch
from torch.utils.data import TensorDataset


def build_model(hidden=8):
    return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Linear(hidden, 1))


def data(num_samples=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, 4, generator=generator)
    return TensorDataset(inputs, inputs.sum(dim=1, keepdim=True))


def training_step(trainer, batch, batch_idx, dataloader_idx, dataloader_name):
    hold = os.environ.get("HOLD_FILE")
    if hold and trainer.global_step >= 2:
        print("WAITING", flush=True)
        while not os.path.exists(hold):
            time.sleep(0.02)
    inputs, targets = batch
    return {"loss": torch.nn.functional.mse_loss(trainer.model(inputs), targets)}
"""


class Started:
    """A background process whose output goes to a log file (a pipe could fill up)."""

    def __init__(self, cmd: list[str], log: Path, **kwargs) -> None:
        self.log = log
        with log.open("w") as sink:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, **kwargs)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, prefix: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(line.startswith(prefix) for line in self.output().splitlines()):
            if self.proc.poll() is not None:
                pytest.fail(
                    f"ended (code {self.proc.returncode}) before {prefix!r}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {prefix!r} after {TIMEOUT_S} s:\n{self.output()}")
            time.sleep(0.05)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running after {TIMEOUT_S} s:\n{self.output()}")


def _script(root: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-u", str(SCRIPT), str(root), name, *extra]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, **kwargs)


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its modification time and content."""
    return {
        path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _loss_lines(run_dir: Path) -> list[dict]:
    """metrics.jsonl's lines, keeping the step and the loss values (timings always differ)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k == "step" or "loss" in k} for line in lines]


def _experiment(root: Path, name: str) -> Path:
    """An mtf experiment whose run directory is ``root/name``, with its components module."""
    module = f"components_{name}"
    (root / f"{module}.py").write_text(COMPONENTS, encoding="utf-8")
    config = {
        "experiment_name": name,
        "seed": 0,
        "device": "cpu",
        "model": {"factory": f"{module}.build_model", "training_step": f"{module}.training_step"},
        "data": {"train": [{"name": "a", "factory": f"{module}.data", "batch_size": 8}]},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"max_epochs": 2},
        "checkpoint": {"root_dir": str(root), "save_every_n_steps": 1},
        "logging": {"progress_bar": False},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return children


def _is_running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state


def test_a_second_run_on_a_live_run_is_refused_and_the_live_run_stays_its_own(tmp_path):
    assert _run(_script(tmp_path, "reference")).returncode == 0
    go = tmp_path / "go"
    owner = Started(
        _script(tmp_path, "shared", "--wait-for", str(go), "--wait-at-step", "4"),
        tmp_path / "owner.log",
    )
    owner.wait_for_line("WAITING")  # mid-training, after the step-3 checkpoint, holding still
    run_dir = tmp_path / "shared"
    before = _snapshot(run_dir)

    second_fit = _run(_script(tmp_path, "shared", "--lr", "0.5"))
    second_train = _run([str(MTF), "train", str(_experiment(tmp_path, "shared"))], cwd=tmp_path)

    assert _snapshot(run_dir) == before, "the refused attempts changed the live run's files"
    owned = (
        f"run directory {run_dir} is owned by a live process (host {socket.gethostname()}, "
        f"pid {owner.pid}, started "
    )
    assert second_fit.returncode != 0 and owned in second_fit.stderr, second_fit.stderr
    assert second_train.returncode == 2, second_train.stderr
    assert second_train.stderr.startswith("mtf: error: " + owned), second_train.stderr
    go.touch()
    assert owner.wait() == 0, owner.output()
    reference = torch.load(tmp_path / "reference" / "final.pt", weights_only=False)
    final = torch.load(run_dir / "final.pt", weights_only=False)
    assert final["fingerprint"] == reference["fingerprint"]
    assert_states_equal(reference["model"], final["model"], "model")
    assert_states_equal(reference["optimizer"], final["optimizer"], "optimizer")
    assert _loss_lines(run_dir) == _loss_lines(tmp_path / "reference")  # every line its own


def test_the_lock_of_a_sigkilled_owner_does_not_block_its_resume_despite_live_workers(tmp_path):
    owner = Started(
        _script(tmp_path, "killed", "--workers", "2", "--wait-for", str(tmp_path / "never")),
        tmp_path / "owner.log",
    )
    owner.wait_for_line("WAITING")
    workers = _children(owner.pid)  # DataLoader workers, forked: they inherited the lock file
    assert len(workers) >= 2, owner.output()
    run_dir = tmp_path / "killed"
    assert read_lock_state(run_dir).is_held
    try:
        owner.proc.send_signal(signal.SIGKILL)
        owner.wait()
        assert any(_is_running(pid) for pid in workers), "the workers exited before the check"
        assert not read_lock_state(run_dir).is_held  # the lock died with its owner

        resumed = _run(_script(tmp_path, "killed", "--workers", "2"))

        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "STATUS completed" in resumed.stdout
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_status_shows_a_live_train_as_running_and_a_killed_one_as_stale(tmp_path, capsys):
    config = _experiment(tmp_path, "watched")
    hold = tmp_path / "hold"
    trainer = Started(
        [str(MTF), "train", str(config)],
        tmp_path / "train.log",
        cwd=tmp_path,
        env={**os.environ, "HOLD_FILE": str(hold), "PYTHONUNBUFFERED": "1"},
    )
    trainer.wait_for_line("WAITING")

    def status() -> dict:
        capsys.readouterr()
        assert mtf(["status", str(tmp_path), "--json"]) == 0
        (row,) = [r for r in json.loads(capsys.readouterr().out) if r["name"] == "watched"]
        return row

    running = status()
    trainer.proc.send_signal(signal.SIGKILL)
    trainer.wait()
    stale = status()
    recorded = json.loads((tmp_path / "watched" / "status.json").read_text())["status"]
    hold.touch()
    rerun = _run([str(MTF), "train", str(config)], cwd=tmp_path)

    assert running["status"] == "running" and f"pid {trainer.pid}," in running["owner"]
    assert (recorded, stale["status"]) == ("running", "stale")
    assert stale["owner"].endswith("(exited)")
    assert rerun.returncode == 0, rerun.stderr
    assert status()["status"] == "completed"


def test_a_rerun_with_another_lr_warns_and_one_with_another_width_writes_nothing(tmp_path):
    assert _run(_script(tmp_path, "changing")).returncode == 0
    run_dir = tmp_path / "changing"

    other_lr = _run(_script(tmp_path, "changing", "--lr", "0.05"))
    before = _snapshot(run_dir)
    other_width = _run(_script(tmp_path, "changing", "--hidden", "64"))

    assert other_lr.returncode == 0, other_lr.stderr
    assert "optimizers[0].param_groups[0].lr: 0.01 -> 0.05" in other_lr.stderr
    assert other_width.returncode != 0
    assert "does not fit this run; nothing was written" in other_width.stderr
    assert "model.body.0.weight: [32, 8] -> [64, 8]" in other_width.stderr
    assert _snapshot(run_dir) == before
