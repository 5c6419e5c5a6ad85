"""Crash-safe file writes shared by checkpoints, manifests and the SLURM launcher.

# NOTE [atomic write]: a file is first written to a temporary file in the *same* directory
# (so the final ``os.replace`` is a rename within one filesystem), the data is flushed and
# ``fsync``-ed, the temporary file is renamed over the target, and finally the directory is
# ``fsync``-ed so the rename itself is durable. A crash at any moment therefore leaves either
# the complete old file or the complete new file under the target name, never a mix. What a
# crash can leave behind is a temporary file named ``.<target name>.<hex token>.tmp``;
# :func:`remove_stale_temp_files` deletes those.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "config.yaml"
    >>> atomic_write_text(target, "lr: 0.1\\n")
    >>> target.read_text()
    'lr: 0.1\\n'
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_symlink",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_directory",
    "is_temp_file",
    "missing_directories",
    "names_open_file",
    "remove_empty_directories",
    "remove_stale_temp_files",
    "temp_path_for",
]

logger = logging.getLogger(__name__)

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")
_NEW_FILE_MODE = 0o666  # the process umask is applied on top, as for an ordinary open()


def temp_path_for(path: str | Path) -> Path:
    """Return a fresh temporary path next to ``path`` (same directory, hidden, random token).

    Args:
        path: The final target path.

    Returns:
        ``<dir>/.<name>.<16 hex chars>.tmp``; :func:`is_temp_file` recognises it.
    """
    target = Path(path)
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")


def is_temp_file(path: str | Path) -> bool:
    """Tell whether ``path`` is named like a temporary file of :func:`atomic_write`."""
    return _TEMP_NAME.match(Path(path).name) is not None


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory entry table to disk so renames and unlinks in it are durable.

    Args:
        directory: The directory to flush.

    Raises:
        OSError: The directory cannot be opened or flushed.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(directory, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically by calling ``write`` on a temporary file, then renaming it.

    See NOTE [atomic write]. The parent directory must exist. On any error the temporary file
    is removed and the error propagates; the previous content of ``path`` is untouched.

    Args:
        path: Final file path.
        write: Callback that writes the whole content to the binary file object it gets.

    Raises:
        OSError: Writing, flushing or renaming failed (disk full, permissions, ...).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "blob.bin"
        >>> atomic_write(target, lambda f: f.write(b"abc"))
        >>> target.read_bytes()
        b'abc'
    """
    target = Path(path)
    temp = temp_path_for(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        # BaseException: a KeyboardInterrupt mid-write must not leave the temp file behind.
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: Final file path; its directory must exist.
        data: The complete new content.

    Raises:
        OSError: The write failed; ``path`` keeps its previous content.
    """
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: Final file path; its directory must exist.
        text: The complete new content.
        encoding: Text encoding (default UTF-8).

    Raises:
        OSError: The write failed; ``path`` keeps its previous content.
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_symlink(link: str | Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` atomically (create a temp link, rename it over).

    Readers see either the old or the new link, never a missing one.

    Args:
        link: Path of the symlink to create or replace.
        target: Link target, stored as given (pass a bare file name for a relative link).

    Raises:
        OSError: The filesystem refused the symlink or the rename.
    """
    link_path = Path(link)
    temp = temp_path_for(link_path)
    os.symlink(target, temp)
    try:
        os.replace(temp, link_path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(link_path.parent)


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete temporary files (and directories of sharded checkpoints) that an interrupted
    write left in ``directory``.

    Call this only where no other process is writing into ``directory`` at the same time.

    Args:
        directory: Directory to clean; a missing directory is treated as empty.

    Returns:
        The paths removed.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = []
    for candidate in sorted(folder.iterdir()):
        if not is_temp_file(candidate):
            continue
        if candidate.is_dir() and not candidate.is_symlink():  # a sharded checkpoint's
            shutil.rmtree(candidate)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    if removed:
        logger.info(
            "removed %d temporary file(s) left by an interrupted write in %s: %s",
            len(removed),
            folder,
            ", ".join(p.name for p in removed),
        )
    return removed


def missing_directories(directory: str | Path) -> list[Path]:
    """``directory`` and those of its ancestors that do not exist yet, deepest first (what
    ``mkdir(parents=True)`` would create, for :func:`remove_empty_directories` to undo)."""
    folder, missing = Path(directory), []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def names_open_file(path: str | Path, fd: int) -> bool:
    """Whether ``path`` names the file open as ``fd`` (False once it was removed or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def remove_empty_directories(directories: list[Path]) -> None:
    """Remove ``directories`` in order (deepest first), stopping at the first one that is no
    longer empty or no longer there: another process uses it now, and so its ancestors."""
    for folder in directories:
        try:
            folder.rmdir()
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return
            raise
