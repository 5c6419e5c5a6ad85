"""Run directory ownership: one live process owns ``<run_dir>/.lock`` while it trains.

Two processes training into one run directory (a job launched twice, a requeued job that
overlaps its old allocation, a notebook cell rerun while a script trains) would interleave
their checkpoints under one ``latest`` pointer and their lines in one ``metrics.jsonl``. So
``fit`` first takes an exclusive lock on ``<run_dir>/.lock``; a second process is refused
before it writes anything, with an error that names the owner recorded in the lock file
(host, pid, start time and, under SLURM, the job id).

# NOTE [run directory lock]: the lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the open lock
# file. The kernel drops it when the owner's last descriptor of that open file closes, which
# happens when the process dies in any way (SIGKILL and OOM kills included): a dead owner
# never blocks the next run and there is no stale lock to clean up by hand. After a run the
# lock file keeps the record of its last owner. Four details make the lock exact:
# - A fit refused before its first write (a missing checkpoint to resume, ...) must leave
#   nothing behind, so an owner that never recorded itself removes, on release and while it
#   still holds the lock, the lock file and the directories that its acquire created. A
#   process that was waiting for that file then holds a lock on a file no longer at the path,
#   so every acquire checks after locking that the path still names the file it locked, and
#   otherwise locks the file now there: two processes never own one directory.
# - Forked children (DataLoader workers with the ``fork`` start method) inherit the open file
#   and with it the lock, so a SIGKILLed trainer's orphaned workers would keep holding it
#   until they notice their parent is gone. Every forked child therefore closes its inherited
#   lock descriptors first thing (``os.register_at_fork``); exec'd children never get them
#   (Python opens files non-inheritable).
# - ``mtf status`` tells a held lock from a free one by taking a shared lock for an instant; a
#   trainer that starts in that instant retries for up to ``retry_s`` before it gives up.
# - Where the filesystem refuses locks (``ENOLCK``, ``EOPNOTSUPP``, ``ENOSYS``: NFS without a
#   lock daemon, Lustre mounted without ``flock``, some FUSE filesystems), acquiring raises
#   :class:`RunDirectoryLockError` instead of carrying on unprotected;
#   ``fault_tolerance.lock_run_directory: false`` trains without the lock on purpose.
#   See docs/fault_tolerance.md for shared filesystems.

Example:
    >>> import tempfile
    >>> lock = RunDirectoryLock(Path(tempfile.mkdtemp()) / "my_run")
    >>> lock.acquire()
    >>> lock.record_owner()
    >>> read_lock_state(lock.run_dir).is_held
    True
    >>> lock.release()
    >>> read_lock_state(lock.run_dir).is_held
    False
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_training_framework.errors import RunDirectoryBusyError, RunDirectoryLockError
from model_training_framework.io_utils import (
    missing_directories,
    names_open_file,
    remove_empty_directories,
)
from model_training_framework.trainer.state.run_owner import RunOwner, parse_owner

__all__ = [
    "LOCK_NAME",
    "LockState",
    "NoRunDirectoryLock",
    "RunDirectoryLock",
    "RunOwner",
    "build_run_lock",
    "read_lock_state",
]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}
_RETRY_INTERVAL_S = 0.05
_OPEN_TRIES = 10
_CREATE_NEW = os.O_RDWR | os.O_CREAT | os.O_EXCL

# Lock descriptors this process holds; a forked child closes its copies (NOTE [run directory lock]).
_HELD_FDS: set[int] = set()


def _close_inherited_lock_fds() -> None:
    for fd in _HELD_FDS:
        # Already closed in the child is fine: the lock stays with the parent either way.
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_FDS.clear()


os.register_at_fork(after_in_child=_close_inherited_lock_fds)


@dataclass(frozen=True)
class LockState:
    """What :func:`read_lock_state` found: whether a live process holds the lock, and the
    owner recorded in the lock file (None when there is no file or no readable record)."""

    is_held: bool
    owner: RunOwner | None


class RunDirectoryLock:
    """The exclusive lock on ``<run_dir>/.lock`` (see NOTE [run directory lock]).

    Args:
        run_dir: The run directory; created by :meth:`acquire` if missing.
        retry_s: How long :meth:`acquire` retries a lock that is taken before refusing.

    Example:
        >>> lock = RunDirectoryLock(run_dir)   # doctest: +SKIP
        >>> lock.acquire()                     # doctest: +SKIP
        >>> ...                                # train   # doctest: +SKIP
        >>> lock.release()                     # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, *, retry_s: float = 0.5) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._retry_s = retry_s
        self._fd: int | None = None
        self._has_record = False
        # what acquire created: the lock file, and directories (deepest first)
        self._created_file = False
        self._created_dirs: list[Path] = []

    @property
    def is_held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or refuse: nothing in the run directory is written either way
        (only a missing directory and an empty lock file are created; :meth:`release`
        removes them again unless :meth:`record_owner` was called).

        Raises:
            RunDirectoryBusyError: a live process owns the run directory (names it).
            RunDirectoryLockError: the lock file cannot be created, or the filesystem does
                not support file locks.
        """
        if self._fd is not None:
            return
        while True:
            # per try: after a removed unused file, this process may make the directory anew
            self._created_dirs = missing_directories(self.run_dir)
            fd = self._open()
            try:
                self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if names_open_file(self.path, fd):
                break
            os.close(fd)  # its unused file was removed (NOTE [run directory lock]): retry
        self._fd = fd
        _HELD_FDS.add(fd)

    def record_owner(self) -> None:
        """Write this process into the lock file (once; call it before the first write).

        It is not written by :meth:`acquire`, so an attempt refused by a check after taking
        the lock leaves the file as it was.
        """
        if self._fd is None or self._has_record:
            return
        data = RunOwner.of_this_process().to_record().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        self._has_record = True

    def release(self) -> None:
        """Release the lock (the file and its owner record stay). Safe to call twice. Without
        :meth:`record_owner` (a refused run) what :meth:`acquire` created is removed."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD_FDS.discard(fd)
        is_unused, self._has_record = not self._has_record, False
        if is_unused and self._created_file:
            self.path.unlink()  # while the lock is held: see NOTE [run directory lock]
        os.close(fd)  # closing the last descriptor of the open file drops the flock
        if is_unused and self._created_file:
            remove_empty_directories(self._created_dirs)

    def __enter__(self) -> RunDirectoryLock:
        self.acquire()
        self.record_owner()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _open(self) -> int:
        for _ in range(_OPEN_TRIES):  # an unused file or directory may vanish meanwhile
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                try:
                    fd, self._created_file = os.open(self.path, _CREATE_NEW, 0o644), True
                except FileExistsError:
                    fd, self._created_file = os.open(self.path, os.O_RDWR), False
                return fd
            except FileNotFoundError:
                continue
            except OSError as err:
                raise _cannot_open(self.path, err) from err
        raise _cannot_open(self.path, FileNotFoundError(errno.ENOENT, "removed while opened"))

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + self._retry_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as err:
                if err.errno in _UNSUPPORTED:
                    raise _unsupported(self.path.absolute(), err) from err
                if err.errno not in _BUSY:
                    raise
                if time.monotonic() >= deadline:
                    raise _busy(self.run_dir.absolute(), _read_owner(fd)) from err
            time.sleep(_RETRY_INTERVAL_S)


class NoRunDirectoryLock:
    """Stands in for :class:`RunDirectoryLock` with ``fault_tolerance.lock_run_directory:
    false``: nothing is locked or recorded."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    is_held = False

    def acquire(self) -> None:
        logger.info(
            "fault_tolerance.lock_run_directory is false: %s is not protected against a "
            "second process training into it",
            self.run_dir,
        )

    def record_owner(self) -> None:
        return None

    def release(self) -> None:
        return None


def build_run_lock(run_dir: str | Path, *, enabled: bool) -> RunDirectoryLock | NoRunDirectoryLock:
    """The run directory lock, or a no-op stand-in when locking is switched off."""
    return RunDirectoryLock(run_dir) if enabled else NoRunDirectoryLock(run_dir)


def read_lock_state(run_dir: str | Path) -> LockState:
    """Whether a live process holds ``<run_dir>/.lock``, and the owner it records.

    The check takes a shared lock for an instant (see NOTE [run directory lock]); it writes
    nothing and never creates the lock file.

    Raises:
        RunDirectoryLockError: the filesystem does not support file locks.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return LockState(is_held=False, owner=None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in _UNSUPPORTED:
                raise _unsupported(path, err) from err
            if err.errno not in _BUSY:
                raise
            return LockState(is_held=True, owner=parse_owner(_read_text(fd)))
        return LockState(is_held=False, owner=parse_owner(_read_text(fd)))
    finally:
        os.close(fd)


def _read_text(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")


def _read_owner(fd: int) -> str:
    text = _read_text(fd)
    if not text.strip():
        return "owner not recorded yet: it is still starting"
    owner = parse_owner(text)
    if owner is None:
        return f"unreadable owner record {text[:80]!r}"
    if owner.is_this_process():
        return f"{owner.describe()}: this process, in another fit that has not finished"
    if owner.is_gone():
        return (
            f"the record still names its previous owner ({owner.describe()}), which has "
            "exited: the new owner is still starting"
        )
    return owner.describe()


def _cannot_open(path: Path, err: OSError) -> RunDirectoryLockError:
    return RunDirectoryLockError(
        f"cannot open the run directory lock {path}: {err}; the run directory must be "
        "writable (check checkpoint.root_dir and its permissions)"
    )


def _busy(run_dir: Path, owner: str) -> RunDirectoryBusyError:
    return RunDirectoryBusyError(
        f"run directory {run_dir} is owned by a live process ({owner}); a second run there "
        "would mix its checkpoints and logs into that run's. Wait for it to finish (mtf status "
        "shows it as running) or stop it, or train under another experiment_name or "
        "checkpoint.root_dir"
    )


def _unsupported(path: Path, err: OSError) -> RunDirectoryLockError:
    return RunDirectoryLockError(
        f"cannot lock {path}: the filesystem does not support file locks ({err}), so the run "
        "directory cannot be protected against a second process training into it. Mount it "
        "with locking (NFS: lockd running, no 'nolock'; Lustre: '-o flock'), set "
        "checkpoint.root_dir to a filesystem with locks, or set "
        "fault_tolerance.lock_run_directory: false to train without the lock (then make sure "
        "yourself that only one process uses the run directory)"
    )
