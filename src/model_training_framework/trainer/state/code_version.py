"""Which code a run executes: git commit and dirty flag, recorded in every checkpoint.

Sources, in order:

1. ``$MTF_CODE_VERSION_FILE``: a YAML or JSON mapping written when a SLURM job's code snapshot
   was taken (jobs run from a snapshot directory that may not be a git tree). It must hold
   ``commit`` and ``dirty``; further keys (e.g. the patch path) are passed through.
2. ``git`` asked in the given directories in turn (``mtf train`` gives the config file's folder,
   the folders of the modules it imports, then the working directory), the first inside a git
   work tree wins; by default in the directory of the running script (``sys.argv[0]``), else
   the current directory. Each git call has a short timeout.
3. Outside a git tree, without git, or when git times out: ``{"commit": None, "dirty": None}``.

Example:
    >>> sorted(get_code_version(directory="/"))
    ['commit', 'dirty', 'source']
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from model_training_framework.errors import ConfigError

__all__ = [
    "CODE_VERSION_FILE_ENV",
    "COMMIT",
    "DIRTY",
    "LEGACY_DIRTY",
    "SOURCE",
    "get_code_version",
]

logger = logging.getLogger(__name__)

CODE_VERSION_FILE_ENV = "MTF_CODE_VERSION_FILE"
COMMIT = "commit"
DIRTY = "dirty"
SOURCE = "source"

# The dirty flag's name in records written before it was renamed to DIRTY (still read).
LEGACY_DIRTY = "is_dirty"
_SOURCE_FILE = "file"
_SOURCE_GIT = "git"
_DEFAULT_TIMEOUT_S = 5.0


def get_code_version(
    directory: str | Path | Sequence[str | Path] | None = None,
    *,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """Return ``{"commit", "dirty", "source", ...}`` for the code being run.

    Args:
        directory: Where to ask git, or several directories to try in order (the first inside
            a git work tree wins); default: the running script's directory, else the cwd.
            Ignored when ``$MTF_CODE_VERSION_FILE`` is set.
        timeout_s: Limit for each git call, in seconds.

    Returns:
        ``commit``: full hash or None; ``dirty``: True when tracked files differ from the
        commit (untracked files do not count), or None when unknown; ``source``: ``"file"``,
        ``"git"`` or None.

    Raises:
        ConfigError: ``$MTF_CODE_VERSION_FILE`` names a file that is missing, unreadable or
            lacks ``commit``/``dirty``.
    """
    record_path = os.environ.get(CODE_VERSION_FILE_ENV)
    if record_path:
        return _read_record(Path(record_path))
    if directory is None:
        directories = [_default_directory()]
    elif isinstance(directory, (str, Path)):
        directories = [Path(directory)]
    else:
        directories = [Path(d) for d in directory]
    version = {COMMIT: None, DIRTY: None, SOURCE: None}
    for candidate in dict.fromkeys(directories):
        version = _ask_git(candidate, timeout_s)
        if version[COMMIT] is not None:
            break
    return version


def _default_directory() -> Path:
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.is_file():
        return script.resolve().parent
    return Path.cwd()


def _read_record(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"${CODE_VERSION_FILE_ENV} points to {path}, which cannot be read ({err}); "
            f"unset ${CODE_VERSION_FILE_ENV} or point it to the code-version record of the "
            "job's snapshot"
        ) from err
    try:
        record = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"code-version record {path} is not valid JSON/YAML: {err}") from err
    if isinstance(record, dict) and DIRTY not in record and LEGACY_DIRTY in record:
        # a record written before the flag was renamed: store it under the one name
        record = {**record, DIRTY: record[LEGACY_DIRTY]}
        del record[LEGACY_DIRTY]
    if not isinstance(record, dict) or COMMIT not in record or DIRTY not in record:
        raise ConfigError(
            f"code-version record {path} must be a mapping with keys '{COMMIT}' and '{DIRTY}' "
            f"(or '{LEGACY_DIRTY}'), got {record!r}"
        )
    return {**record, SOURCE: _SOURCE_FILE}


def _ask_git(directory: Path, timeout_s: float) -> dict[str, Any]:
    commit = _git(directory, ["rev-parse", "HEAD"], timeout_s)
    if commit is None:
        return {COMMIT: None, DIRTY: None, SOURCE: None}
    status = _git(directory, ["status", "--porcelain", "--untracked-files=no"], timeout_s)
    return {COMMIT: commit, DIRTY: None if status is None else bool(status), SOURCE: _SOURCE_GIT}


def _git(directory: Path, args: list[str], timeout_s: float) -> str | None:
    """Run git in ``directory``; return its stripped stdout, or None when git cannot answer."""
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        logger.debug("git is not installed; code version unknown")
        return None
    except subprocess.TimeoutExpired:
        logger.warning(
            "git %s in %s took longer than %.1f s; code version not recorded",
            " ".join(args),
            directory,
            timeout_s,
        )
        return None
    if result.returncode != 0:
        logger.debug("git %s in %s failed: %s", " ".join(args), directory, result.stderr.strip())
        return None
    return result.stdout.strip()
