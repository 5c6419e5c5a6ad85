"""The machine lock around the test Slurm (tests/slurm_lock.py), with real processes, no Slurm.

Each child process takes the lock as ``slurm_cluster`` does, prints ``LOCKED <how>``, holds it
until it reads a line, releases it, prints ``RELEASED`` and exits after one more line.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHILD = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from tests.slurm_lock import acquire_machine_lock
lock = acquire_machine_lock(Path(sys.argv[1]), report=lambda m: print("WAIT", m, flush=True))
print("LOCKED", lock.how, flush=True)
sys.stdin.readline()
lock.release()
print("RELEASED", flush=True)
sys.stdin.readline()
"""
TIMEOUT_S = 30

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="needs flock(1)")


class Child:
    """A child process whose stdout lines arrive in a queue."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self) -> str:
        return self.lines.get(timeout=TIMEOUT_S)

    def tell(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT_S)


@pytest.fixture
def children():
    started: list[Child] = []

    def start(*wrapper: str, lock: Path) -> Child:
        child = Child([*wrapper, sys.executable, "-c", CHILD, str(lock)])
        started.append(child)
        return child

    yield start
    for child in started:
        child.finish()


def _free(lock: Path) -> bool:
    """Whether flock(1), as a hand-started Slurm would be wrapped, gets the lock now."""
    return subprocess.run(["flock", "-n", str(lock), "true"], timeout=TIMEOUT_S).returncode == 0


def test_a_second_session_waits_for_the_first_and_says_who_holds_the_lock(children, tmp_path):
    lock = tmp_path / "slurm.lock"
    first = children(lock=lock)
    assert first.next_line() == "LOCKED taken"
    assert not _free(lock)  # flock(1) users are excluded too: the same kind of lock

    second = children(lock=lock)
    waiting = second.next_line()
    assert waiting.startswith("WAIT ") and f"pid {first.proc.pid} " in waiting
    assert second.lines.empty() and second.proc.poll() is None

    first.tell()
    assert first.next_line() == "RELEASED"
    assert second.next_line() == "LOCKED taken"
    second.tell()
    assert second.next_line() == "RELEASED"
    assert _free(lock)


@pytest.mark.parametrize(
    "wrapper",
    [
        ["flock", "{lock}"],  # the child inherits the locked descriptor
        ["flock", "-o", "{lock}"],  # no descriptor: flock, the holder, is the parent
        ["bash", "-c", 'exec 9>"$0"; flock 9; exec "$@"', "{lock}"],  # a shell's descriptor
    ],
    ids=["flock", "flock-o", "shell-fd"],
)
def test_a_session_wrapped_in_flock_does_not_wait_for_its_own_wrapper(children, tmp_path, wrapper):
    lock = tmp_path / "slurm.lock"
    child = children(*[arg.format(lock=lock) for arg in wrapper], lock=lock)
    assert child.next_line().startswith("LOCKED held ")  # not "WAIT": no deadlock
    other = children(lock=lock)
    assert other.next_line().startswith("WAIT ")  # the wrapper's lock still excludes others

    child.tell()
    assert child.next_line() == "RELEASED"
    assert not _free(lock)  # the wrapper's lock is the wrapper's to release
    child.tell()
    assert child.proc.wait(TIMEOUT_S) == 0
    assert other.next_line() == "LOCKED taken"
