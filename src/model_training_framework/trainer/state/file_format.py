"""Checkpoint file format: what a file holds, how it is written, read and checked.

A checkpoint file is ``torch.save`` of one dict: the metadata keys below plus the trainer's
payload (one entry per component ``state_dict()``). Payloads hold only tensors and plain Python
values, so files load with ``torch.load(weights_only=True)`` (no arbitrary code runs on load;
``state/payload_types.py`` checks that before a write). How files are named is
``state/file_names.py``; this module re-exports both modules' names for its callers.

# NOTE [checkpoint integrity]: ``torch.load`` does not verify the CRC32 sums that
# ``torch.save`` stores in its zip container, so a bit flip inside tensor data loads silently.
# :func:`read_checkpoint` therefore checks every zip member's CRC first (cheap next to the
# unpickling) and reports truncated, corrupt and foreign files as :class:`CheckpointError`
# (a file that does not start like a zip archive is "not a checkpoint", never "damaged").
"""

from __future__ import annotations

import datetime as dt
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from model_training_framework.errors import CheckpointError
from model_training_framework.io_utils import atomic_write
from model_training_framework.trainer.state.file_names import (
    BEST_NAME,
    LATEST_NAME,
    FilenamePattern,
)
from model_training_framework.trainer.state.layout import FORMAT_VERSION, upgrade
from model_training_framework.trainer.state.payload_types import (
    MAPPING_TYPES,
    SEQUENCE_TYPES,
    check_payload_types,
)
from model_training_framework.version import __version__

__all__ = [
    "BEST_NAME",
    "CODE_VERSION_KEY",
    "CREATED_AT_KEY",
    "EPOCH_KEY",
    "FORMAT_VERSION",
    "FORMAT_VERSION_KEY",
    "FRAMEWORK_VERSION_KEY",
    "GLOBAL_STEP_KEY",
    "LATEST_NAME",
    "MANAGER_KEY",
    "MAPPING_TYPES",
    "METADATA_KEYS",
    "METRICS_KEY",
    "SEQUENCE_TYPES",
    "FilenamePattern",
    "check_payload_types",
    "make_file_content",
    "read_checkpoint",
    "write_checkpoint",
]

OLDEST_FORMAT_VERSION = 1  # read, and upgraded to FORMAT_VERSION (see state/layout.py)

FORMAT_VERSION_KEY = "format_version"
FRAMEWORK_VERSION_KEY = "framework_version"
CREATED_AT_KEY = "created_at"
EPOCH_KEY = "epoch"
GLOBAL_STEP_KEY = "global_step"
METRICS_KEY = "metrics"
CODE_VERSION_KEY = "code_version"
MANAGER_KEY = "checkpoint_manager"
METADATA_KEYS = (
    FORMAT_VERSION_KEY,
    FRAMEWORK_VERSION_KEY,
    CREATED_AT_KEY,
    EPOCH_KEY,
    GLOBAL_STEP_KEY,
    METRICS_KEY,
    CODE_VERSION_KEY,
    MANAGER_KEY,
)

_ZIP_MAGIC = b"PK\x03\x04"  # every file torch.save writes (a zip archive) starts with it
_TORCH_PICKLE = "data.pkl"  # the member holding the pickled object, in torch.save's archive

# What torch.load raises for damaged files varies with the damage (zip reader, unpickler, ...).
_LOAD_ERRORS = (
    RuntimeError,
    OSError,
    EOFError,
    KeyError,
    ValueError,
    IndexError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def make_file_content(
    payload: Mapping[str, Any],
    *,
    epoch: int,
    global_step: int,
    metrics: Mapping[str, float],
    code_version: Mapping[str, Any],
    manager_state: Mapping[str, Any],
) -> dict[str, Any]:
    """Return the dict to write: metadata keys first, then the payload's entries.

    Args:
        payload: Component states built by the trainer; must not use a metadata key.
        epoch: Epoch recorded in the file (as the trainer counts it).
        global_step: Optimizer steps taken so far.
        metrics: Latest metric values (floats).
        code_version: Output of ``get_code_version()``.
        manager_state: ``CheckpointManager.state_dict()`` after this save's best-metric update.

    Returns:
        The file content.

    Raises:
        ValueError: ``payload`` uses a reserved metadata key.
    """
    clashes = sorted(set(payload) & set(METADATA_KEYS))
    if clashes:
        raise ValueError(
            f"checkpoint payload uses reserved key(s) {clashes}; the checkpoint manager writes "
            f"those itself ({list(METADATA_KEYS)}): rename them in the payload"
        )
    return {
        FORMAT_VERSION_KEY: FORMAT_VERSION,
        FRAMEWORK_VERSION_KEY: __version__,
        CREATED_AT_KEY: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        EPOCH_KEY: int(epoch),
        GLOBAL_STEP_KEY: int(global_step),
        METRICS_KEY: {str(k): float(v) for k, v in metrics.items()},
        CODE_VERSION_KEY: dict(code_version),
        MANAGER_KEY: dict(manager_state),
        **payload,
    }


def write_checkpoint(path: str | Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` to ``path`` with ``torch.save``, atomically (see NOTE [atomic write]).

    Args:
        path: Target file; its directory must exist.
        content: The file content (see :func:`make_file_content`).

    Raises:
        OSError: The write failed (the error the file raised, e.g. ENOSPC); an existing file at
            ``path`` is untouched.
        KeyboardInterrupt: A Ctrl-C arrived during the write (no file is left behind).
    """

    def write(handle: BinaryIO) -> None:
        recorder = _WriteErrorRecorder(handle)
        try:
            torch.save(dict(content), recorder)
        except RuntimeError as err:
            # torch.save turns an exception raised by the file's write (ENOSPC, a Ctrl-C) into
            # "RuntimeError: [enforce fail at inline_container.cc] unexpected pos": raise the
            # original, so callers see the cause (and a KeyboardInterrupt stays one).
            if recorder.error is not None:
                raise recorder.error from err
            raise

    atomic_write(path, write)


class _WriteErrorRecorder:
    """A binary file wrapper that remembers the exception its ``write`` raised."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except BaseException as err:  # recorded for write_checkpoint, and re-raised
            self.error = err
            raise

    def flush(self) -> None:
        self._handle.flush()


def read_checkpoint(
    path: str | Path, *, map_location: Any = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Read and check one checkpoint file.

    Args:
        path: The file.
        map_location: Passed to ``torch.load`` (default: everything on CPU).
        weights_only: Load with torch's restricted unpickler (default). Set False only for a
            trusted file that holds other Python objects.

    Returns:
        The file content: metadata keys plus the payload, in this format version's layout
        (an older version's file is upgraded).

    Raises:
        CheckpointError: The file is missing, truncated, corrupt, not a checkpoint of this
            framework, or of another format version. The message names the file and lists
            the other checkpoints in its directory to resume from instead.
    """
    file = Path(path)
    if file.is_dir():
        inside = sorted(p.name for p in file.glob("*.ckpt") if p.is_file())
        listing = f": {', '.join(inside)} (in {file})" if inside else " (it holds none)"
        raise CheckpointError(
            f"checkpoint {file} is a directory, not a checkpoint file; give one of the "
            f"checkpoint files in it{listing}"
        )
    if not file.is_file():
        raise CheckpointError(_missing_message(file))
    _verify_zip(file)
    try:
        content = torch.load(file, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if weights_only and "weights only" in str(err).lower():
            raise CheckpointError(
                f"checkpoint {file} holds Python objects other than tensors and plain values, "
                "so it does not load with weights_only=True; if you trust this file, load it "
                f"with weights_only=False (torch says: {str(err).splitlines()[0]})"
            ) from err
        raise _damaged(file, err) from err
    except _LOAD_ERRORS as err:
        raise _damaged(file, err) from err
    _check_format(file, content)
    try:
        return upgrade(content)
    except KeyError as err:
        raise CheckpointError(
            f"checkpoint {file} has format version {content[FORMAT_VERSION_KEY]} but lacks its "
            f"entry {err}; it is damaged or was not written by this framework"
        ) from err


def _not_a_checkpoint(file: Path, found: str) -> CheckpointError:
    return CheckpointError(
        f"{file} is not a checkpoint file ({found}); give a checkpoint the trainer wrote: "
        f"{LATEST_NAME}, {BEST_NAME} or epoch_<e>_step_<s>.ckpt in a run directory "
        "(mtf inspect also takes the run directory itself)"
    )


def _verify_zip(file: Path) -> None:
    """See NOTE [checkpoint integrity]."""
    with file.open("rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:  # e.g. the experiment's YAML, passed by mistake: the user's data
        found = "it is empty" if not head else "it is not a zip archive written by torch.save"
        raise _not_a_checkpoint(file, found)
    try:
        with zipfile.ZipFile(file) as archive:
            bad_member = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise _damaged(file, err) from err
    if bad_member is not None:
        raise _damaged(file, f"checksum mismatch in member {bad_member!r}")
    if not any(name.endswith(_TORCH_PICKLE) for name in names):
        raise _not_a_checkpoint(file, f"a zip archive without the {_TORCH_PICKLE} of torch.save")


def _check_format(file: Path, content: Any) -> None:
    if not isinstance(content, dict) or FORMAT_VERSION_KEY not in content:
        found = sorted(map(str, content))[:10] if isinstance(content, dict) else type(content)
        raise CheckpointError(
            f"{file} is not a model_training_framework checkpoint (no '{FORMAT_VERSION_KEY}' "
            f"key; found {found}); to take only weights from it, use a warm-start loader "
            "(set_warm_start_loader / WarmStartConfig)"
        )
    found_version = content[FORMAT_VERSION_KEY]
    if found_version not in range(OLDEST_FORMAT_VERSION, FORMAT_VERSION + 1):
        raise CheckpointError(
            f"checkpoint {file} has format version {found_version!r} (written by "
            f"model_training_framework {content.get(FRAMEWORK_VERSION_KEY, 'unknown')}); this "
            f"version ({__version__}) reads format version {FORMAT_VERSION} and "
            f"older ones down to format version {OLDEST_FORMAT_VERSION}; resume it with the "
            "framework version that wrote it, or start from a checkpoint of this version"
        )


def _damaged(file: Path, reason: object) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {file} is truncated or corrupt ({reason}); resume from another "
        f"checkpoint{_alternatives_hint(file)}; if it is in the way, move it aside and keep it "
        "until you know what damaged it (a copy still running, a full disk)"
    )


def _missing_message(file: Path) -> str:
    """Say that ``file`` is missing; a name without ``.ckpt`` may have meant a run directory."""
    folder = file.parent
    if file.suffix == ".ckpt" or not folder.is_dir():
        return f"checkpoint {file} does not exist{_alternatives_hint(file)}"
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    listing = (
        f"run directories in {folder}: {', '.join(runs)}"
        if runs
        else f"{folder} holds no run directories"
    )
    files = sorted(p.name for p in folder.glob("*.ckpt") if p.is_file())
    files_note = f"; checkpoint files there: {', '.join(files)}" if files else ""
    return (
        f"{file} does not exist: no run directory or checkpoint file of that name; "
        f"{listing}{files_note}"
    )


def _alternatives_hint(file: Path) -> str:
    folder = file.parent
    if not folder.is_dir():
        return ""
    others = sorted(
        p.name
        for p in folder.glob("*.ckpt")
        if p.name != file.name and p.is_file() and not p.is_symlink()
    )
    return f": {', '.join(others)} (in {folder})" if others else f" (none other in {folder})"
