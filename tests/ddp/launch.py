"""Launch ``ddp_worker.py`` under torchrun (2 Gloo processes on CPU) or alone, and wait for it.

Output goes to a log file (a pipe could fill up while a test waits for a file to appear). A run
that outlives its timeout is killed (torchrun's process group and every worker, which torchrun
starts in sessions of their own) and the test fails with its log: nothing may hang.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
RUN_TIMEOUT_S = 90.0
# Worker arguments shared by the DDP and FSDP suites: a configuration whose result does not
# depend on the summation order, and one slow enough to be killed mid-run and resumed.
COMPARABLE = ["--strategy", "round_robin"]
RESUMABLE = [
    "--strategy",
    "weighted",
    "--shuffle",
    "--epochs",
    "3",
    "--save-every",
    "2",
    "--slow-ms",
    "60",
]
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
_STEP = re.compile(r"step_(\d+)\.ckpt$")


@dataclass
class Launched:
    """A started run: its process (torchrun, or the worker itself) and where it writes."""

    proc: subprocess.Popen
    run_dir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def worker_pids(self) -> dict[int, int]:
        """Rank -> pid, from the pid files the workers wrote so far."""
        pids = {}
        for path in self.run_dir.glob("pid_rank*"):
            text = path.read_text().strip()
            if text:
                pids[int(path.name.removeprefix("pid_rank"))] = int(text)
        return pids

    def kill(self) -> None:
        """SIGKILL torchrun's process group and every worker, as a node failure would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.worker_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=RUN_TIMEOUT_S)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        """The exit code; kills the run and fails the test if it takes longer than ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"run {self.run_dir.name} hung for {timeout} s; log:\n{self.output()[-4000:]}"
            )

    def wait_for(
        self, what: str, condition: Callable[[], bool], timeout: float = RUN_TIMEOUT_S
    ) -> None:
        """Poll ``condition`` until true; fail if the run ends first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"run ended (code {self.proc.returncode}) before {what}; log:\n{self.output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} after {timeout} s; log:\n{self.output()[-4000:]}")
            time.sleep(0.02)

    def checkpoint_steps(self) -> list[int]:
        """Steps of the checkpoint files written so far."""
        return sorted(
            int(m.group(1)) for p in self.run_dir.glob("*.ckpt") if (m := _STEP.search(p.name))
        )

    def final(self, rank: int) -> dict:
        return torch.load(self.run_dir / f"final_rank{rank}.pt", weights_only=False)


def launch(out: Path, name: str, *args: str, nproc: int = 2) -> Launched:
    """Start ``ddp_worker.py OUT NAME ARGS`` under torchrun with ``nproc`` processes
    (``nproc=0``: one plain process, no torchrun)."""
    run_dir = Path(out) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("pid_rank*"):
        stale.unlink()
    worker = [str(WORKER), str(out), name, *args]
    if nproc:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            *worker,
        ]
    else:
        cmd = [sys.executable, *worker]
    log = Path(out) / f"{name}.{len(list(Path(out).glob(f'{name}.*.log')))}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=_ENV, start_new_session=True
        )
    return Launched(proc, run_dir, log)
