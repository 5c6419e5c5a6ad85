"""Code snapshot at submission: git commit, dirty flag, patch, and a copy of the code.

The user's working tree and index are only read. A temporary index (``GIT_INDEX_FILE``) is
filled with HEAD plus every uncommitted change (tracked edits and new files that git does not
ignore), the snapshot directory is checked out from that index, and the difference to HEAD is
saved as a patch. Submodules (and other nested repositories) are snapshotted the same way into
their place. Nothing is committed, so no git identity is needed, and branches are never
switched. A repository without any commit yet is snapshotted from its files alone.

The record is a small JSON file (``code_version.json``) that jobs find through the environment
variable ``MTF_CODE_VERSION_FILE``; the trainer reads it
(:mod:`~model_training_framework.trainer.state.code_version`, which names its keys) and stores it
in its checkpoints.

Example:
    >>> snap = take_snapshot(project_root, experiments_dir / ".mtf_code")  # doctest: +SKIP
    >>> write_code_version(experiment_dir, snap)                           # doctest: +SKIP
    >>> read_code_version(experiment_dir).commit                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from model_training_framework.errors import LauncherError
from model_training_framework.io_utils import atomic_write_text
from model_training_framework.process_utils import run_command
from model_training_framework.trainer.state.code_version import (
    DIRTY,
    LEGACY_DIRTY,
)

__all__ = [
    "CODE_VERSION_FILENAME",
    "CodeVersion",
    "read_code_version",
    "take_snapshot",
    "write_code_version",
]

logger = logging.getLogger(__name__)

CODE_VERSION_FILENAME = "code_version.json"
PATCH_FILENAME = "uncommitted.patch"
_GIT_TIMEOUT_S = 120.0
_LARGE_PATCH_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class CodeVersion:
    """Which code a job runs.

    Attributes:
        project_root: the user's project directory.
        code_dir: directory the job runs from (the snapshot, or project_root without git).
        commit: git commit hash, None when the project is not a git repository or the
            repository has no commit yet.
        branch: branch name at submission ("" when detached or no git).
        dirty: True when there were uncommitted changes (None without git).
        patch_path: file holding those changes as a git patch (None when clean / no git).
        created_at: submission time, ISO 8601.
    """

    project_root: str
    code_dir: str
    commit: str | None
    branch: str
    dirty: bool | None
    patch_path: str | None
    created_at: str

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON/YAML friendly)."""
        return asdict(self)


def _git(project_root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    return run_command(
        ["git", "-C", str(project_root), *args], timeout_s=_GIT_TIMEOUT_S, env=env, check=check
    )


def _repo_root(project_root: Path) -> Path | None:
    result = _git(project_root, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip()).resolve()


def _head_commit(repo: Path) -> str | None:
    """HEAD's commit hash, or None before the first commit."""
    result = _git(repo, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _branch(repo: Path) -> str:
    """The checked-out branch (also before its first commit); "" when HEAD is detached."""
    result = _git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def _exclude_pathspecs(repo: Path, exclude: list[Path]) -> list[str]:
    """``:(exclude)`` pathspecs for the excluded paths inside ``repo`` that git does not ignore.

    git refuses a pathspec, even an excluding one, that names an ignored path ("The following
    paths are ignored ..."); an ignored path is left out by ``git add`` anyway, so it needs none.
    """
    pathspecs = []
    for path in exclude:
        try:
            relative = path.resolve().relative_to(repo)
        except ValueError:
            continue  # outside this repository: nothing to exclude
        if str(relative) == ".":
            continue
        ignored = _git(repo, "check-ignore", "-q", "--", str(relative), check=False)
        if ignored.returncode not in (0, 1):
            raise LauncherError(f"git check-ignore {relative} failed in {repo}: {ignored.stderr}")
        if ignored.returncode == 1:
            pathspecs.append(f":(exclude){relative}")
    return pathspecs


def _nested_repositories(repo: Path, env: dict[str, str]) -> list[str]:
    """Paths (relative to ``repo``) of the index's gitlinks whose repository is checked out."""
    listing = _git(repo, "ls-files", "--stage", "-z", env=env).stdout
    nested = []
    for entry in filter(None, listing.split("\0")):
        mode, _, path = entry.partition("\t")
        if mode.startswith("160000") and (repo / path / ".git").exists():
            nested.append(path)
    return nested


def _snapshot_repository(
    repo: Path, exclude: list[Path], patch: BinaryIO, code_root: Path | None, prefix: str = ""
) -> None:
    """Write the uncommitted changes of ``repo`` (and of its nested repositories) to ``patch``
    and, when ``code_root`` is given, check HEAD plus those changes out there.

    ``prefix`` is the repository's path inside the outermost one, so the patch of a submodule
    names its files as the superproject sees them.
    """
    head = _head_commit(repo)
    with tempfile.TemporaryDirectory(prefix="mtf-index-") as tmp:
        # GIT_OPTIONAL_LOCKS=0: the `git status` that git runs inside submodules must not
        # refresh (rewrite) their index either.
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_OPTIONAL_LOCKS": "0"}
        if head is not None:
            _git(repo, "read-tree", head, env=env)
        _git(repo, "add", "-A", "--", ".", *_exclude_pathspecs(repo, exclude), env=env)
        diff = Path(tmp) / "changes.patch"
        _git(
            repo,
            "diff",
            "--cached",
            "--binary",
            f"--src-prefix=a/{prefix}",
            f"--dst-prefix=b/{prefix}",
            f"--output={diff}",
            *([head] if head is not None else []),  # no commit yet: against the empty tree
            env=env,
        )
        patch.write(diff.read_bytes())
        if code_root is not None:
            code_root.mkdir(parents=True, exist_ok=True)
            _git(repo, "checkout-index", "--all", "--force", f"--prefix={code_root}/", env=env)
        for path in _nested_repositories(repo, env):
            _snapshot_repository(
                (repo / path).resolve(),
                exclude,
                patch,
                None if code_root is None else code_root / path,
                f"{prefix}{path}/",
            )


def take_snapshot(
    project_root: str | Path,
    snapshots_dir: str | Path,
    *,
    exclude: list[Path] | None = None,
    copy_code: bool = True,
) -> CodeVersion:
    """Record the code version and copy the code to a new directory under ``snapshots_dir``.

    Args:
        project_root: the user's project (a git repository, or any directory).
        snapshots_dir: parent of snapshot directories (created when missing).
        exclude: paths inside the repository left out of the patch (e.g. the experiments dir).
        copy_code: False records commit and dirty flag only (dry runs): nothing is written and
            ``code_dir`` is ``project_root``.

    Returns:
        The :class:`CodeVersion`; without git, ``code_dir`` is ``project_root`` itself and a
        warning is logged, since the job then runs the live tree.

    Raises:
        LauncherError: git failed (message shows its stderr).
    """
    root = Path(project_root).resolve()
    created_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    repo = _repo_root(root)
    if repo is None:
        logger.warning("%s is not a git repository: no code snapshot, jobs run the live tree", root)
        return CodeVersion(str(root), str(root), None, "", None, None, created_at)
    commit = _head_commit(repo)
    branch = _branch(repo)
    excluded = [Path(snapshots_dir), *(exclude or [])]
    if not copy_code:
        with tempfile.TemporaryDirectory(prefix="mtf-patch-") as tmp:
            patch_path = Path(tmp) / PATCH_FILENAME
            with patch_path.open("wb") as patch:
                _snapshot_repository(repo, excluded, patch, None)
            dirty = patch_path.stat().st_size > 0
        return CodeVersion(str(root), str(root), commit, branch, dirty, None, created_at)
    label = commit[:10] if commit is not None else "no-commit"
    target = (
        Path(snapshots_dir).resolve()
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{uuid.uuid4().hex[:6]}"
    )
    code_root = target / "code"
    code_root.mkdir(parents=True)
    patch_path = target / PATCH_FILENAME
    with patch_path.open("wb") as patch:
        _snapshot_repository(repo, excluded, patch, code_root)
    dirty = patch_path.stat().st_size > 0
    if patch_path.stat().st_size > _LARGE_PATCH_BYTES:
        logger.warning(
            "uncommitted changes in %s are %d bytes; is a data file untracked?",
            repo,
            patch_path.stat().st_size,
        )
    if not dirty:
        patch_path.unlink()
    code_dir = code_root / root.relative_to(repo)
    return CodeVersion(
        str(root),
        str(code_dir),
        commit,
        branch,
        dirty,
        str(patch_path) if dirty else None,
        created_at,
    )


def write_code_version(experiment_dir: str | Path, version: CodeVersion) -> Path:
    """Write ``<experiment_dir>/code_version.json`` and return its path."""
    path = Path(experiment_dir) / CODE_VERSION_FILENAME
    atomic_write_text(path, json.dumps(version.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_code_version(experiment_dir: str | Path) -> CodeVersion:
    """Read the code version of an experiment directory (or of a ``code_version.json`` path).

    Raises:
        FileNotFoundError: no record there.
        LauncherError: the record is not valid.
    """
    path = Path(experiment_dir)
    if path.is_dir():
        path = path / CODE_VERSION_FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and DIRTY not in data and LEGACY_DIRTY in data:
        data[DIRTY] = data.pop(LEGACY_DIRTY)  # a record written before the flag was renamed
    try:
        return CodeVersion(**data)
    except TypeError as err:
        raise LauncherError(f"{path} is not a code version record: {err}") from err
