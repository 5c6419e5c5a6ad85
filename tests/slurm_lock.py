"""The machine-wide lock that lets only one test Slurm run on a machine at a time.

The test Slurm listens on fixed ports (6817, 6818) and its daemons find each other by them, so
two pytest sessions that each start one collide. ``slurm_cluster`` (tests/slurm_plugin.py)
therefore holds :data:`MACHINE_LOCK` for as long as its Slurm runs, and a second session waits.

NOTE [test Slurm lock]: the lock is a BSD ``flock`` on ``/tmp/mtf-slurm.lock``, the same kind
``flock(1)`` takes, so the fixture, ``flock /tmp/mtf-slurm.lock pytest ...`` and a hand-started
Slurm under ``flock`` all exclude one another. (A POSIX ``fcntl``/``lockf`` lock would never
conflict with ``flock(1)`` on Linux: no deadlock, but no exclusion either.) A session that a
``flock`` wrapper already holds the lock for must not wait for it, or it waits for itself
forever. The lock counts as held for this process, and is neither taken again nor released
here, when

1. this process inherited a descriptor of the lock file whose open file holds the lock
   (``flock FILE cmd`` passes it to ``cmd``; so does ``(flock 9; cmd) 9>FILE``): while a fresh
   descriptor of ours cannot get the lock, a ``flock`` call on that one succeeds at once, as the
   lock belongs to the open file, or
2. ``/proc/locks`` names this process or one of its ancestors as the holder
   (``flock -o FILE cmd`` closes the descriptor for ``cmd``, but ``flock`` waits as its parent).

Otherwise the lock is taken on a descriptor of our own, waiting (with a message naming the
holder) while another process has it, and released by :meth:`MachineLock.release`.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MACHINE_LOCK", "MachineLock", "acquire_machine_lock"]

MACHINE_LOCK = Path("/tmp/mtf-slurm.lock")
_POLL_S = 0.2
_REPEAT_MESSAGE_S = 60.0


@dataclass
class MachineLock:
    """A held machine lock.

    Attributes:
        path: the lock file.
        how: how it is held, for messages (``"taken"``, ``"held by ancestor pid 12"``, ...).
        fd: our own descriptor, None when someone else (a ``flock`` wrapper) holds it for us.
    """

    path: Path
    how: str
    fd: int | None = None

    def release(self) -> None:
        """Release a lock taken here; a lock held for us by a wrapper stays with the wrapper."""
        if self.fd is None:
            return
        fcntl.flock(self.fd, fcntl.LOCK_UN)  # also for copies of the descriptor in forked children
        os.close(self.fd)
        self.fd = None


def acquire_machine_lock(
    path: Path = MACHINE_LOCK, report: Callable[[str], None] = print
) -> MachineLock:
    """Hold the exclusive lock on ``path``, waiting while another process holds it.

    Args:
        path: the lock file (created when missing).
        report: called with a message when we have to wait, and every minute while we do.

    Returns:
        The held lock; call :meth:`MachineLock.release` when done.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if _try_lock(fd):
        return MachineLock(path, "taken", fd)
    held_for_us = _held_for_this_process(path)
    if held_for_us:
        os.close(fd)
        return MachineLock(path, held_for_us)
    started = time.monotonic()
    next_message = started
    while not _try_lock(fd):
        now = time.monotonic()
        if now >= next_message:
            report(_waiting_message(path, now - started))
            next_message = now + _REPEAT_MESSAGE_S
        time.sleep(_POLL_S)
    return MachineLock(path, "taken", fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _held_for_this_process(path: Path) -> str | None:
    """How the lock, held by someone, is held for us (NOTE [test Slurm lock]), or None."""
    identity = _file_identity(path)
    for fd in _descriptors_of(identity):
        if _try_lock(fd):
            return f"held through inherited descriptor {fd} (a flock wrapper)"
    ancestors = _ancestors(os.getpid())
    for pid in _holders(identity):
        if pid in ancestors:
            return f"held by {'this process' if pid == os.getpid() else f'ancestor pid {pid}'}"
    return None


def _file_identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _descriptors_of(identity: tuple[int, int]) -> Iterator[int]:
    """This process's open descriptors on the file ``identity`` (device, inode)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            stat = os.fstat(int(name))
        except OSError:
            continue  # the descriptor listdir itself used, closed by now
        if (stat.st_dev, stat.st_ino) == identity:
            yield int(name)


def _holders(identity: tuple[int, int]) -> list[int]:
    """Pids that ``/proc/locks`` names as holding a FLOCK lock on the file ``identity``."""
    device, inode = identity
    wanted = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 32671 fe:00:2147189 0 EOF" ("->" marks a waiter)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            holders.append(int(fields[4]))
    return holders


def _ancestors(pid: int) -> set[int]:
    """``pid`` and every process above it."""
    chain = set()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the "(comm)" field
    return chain


def _waiting_message(path: Path, waited_s: float) -> str:
    holders = ", ".join(f"pid {pid} ({_command_of(pid)})" for pid in _holders(_file_identity(path)))
    return (
        f"waiting for {path} (held by {holders or 'another process'}; waited {waited_s:.0f} s): "
        "only one test Slurm can run on this machine, another test session is using it"
    )


def _command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    return " ".join(raw.decode(errors="replace").replace("\0", " ").split())[:120] or "?"
