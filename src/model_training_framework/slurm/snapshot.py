"""Code snapshot at submission: git commit, dirty flag, patch, and a copy of the code.

The user's working tree is only read: ``git archive HEAD`` is unpacked into the snapshot
directory and the patch of uncommitted changes (tracked edits *and* new files that git does not
ignore, computed with a temporary index) is applied there. Branches are never switched.

The record is a small JSON file (``code_version.json``) that jobs find through the environment
variable ``MTF_CODE_VERSION_FILE``; the trainer stores it in its checkpoints.

Example:
    >>> snap = take_snapshot(project_root, experiments_dir / ".mtf_code")  # doctest: +SKIP
    >>> write_code_version(experiment_dir, snap)                           # doctest: +SKIP
    >>> read_code_version(experiment_dir).commit                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from model_training_framework.errors import LauncherError
from model_training_framework.io_utils import atomic_write_text
from model_training_framework.slurm.commands import run_command

__all__ = [
    "CODE_VERSION_ENV",
    "CODE_VERSION_FILENAME",
    "CodeVersion",
    "read_code_version",
    "take_snapshot",
    "write_code_version",
]

logger = logging.getLogger(__name__)

CODE_VERSION_FILENAME = "code_version.json"
CODE_VERSION_ENV = "MTF_CODE_VERSION_FILE"
PATCH_FILENAME = "uncommitted.patch"
_GIT_TIMEOUT_S = 120.0
_LARGE_PATCH_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class CodeVersion:
    """Which code a job runs.

    Attributes:
        project_root: the user's project directory.
        code_dir: directory the job runs from (the snapshot, or project_root without git).
        commit: git commit hash, None when the project is not a git repository.
        branch: branch name at submission ("" when detached or no git).
        is_dirty: True when there were uncommitted changes (None without git).
        patch_path: file holding those changes as a git patch (None when clean / no git).
        created_at: submission time, ISO 8601.
    """

    project_root: str
    code_dir: str
    commit: str | None
    branch: str
    is_dirty: bool | None
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
    return Path(result.stdout.strip())


def _write_uncommitted_patch(repo: Path, exclude: list[Path], patch_path: Path) -> None:
    """Binary diff of HEAD against the working tree incl. untracked, non-ignored files.

    A throw-away index is used so the user's staging area is untouched.
    """
    with tempfile.TemporaryDirectory(prefix="mtf-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", "HEAD", env=env)
        pathspecs = ["."]
        for path in exclude:
            try:
                relative = path.resolve().relative_to(repo.resolve())
            except ValueError:
                continue  # outside the repository: nothing to exclude
            if str(relative) != ".":
                pathspecs.append(f":(exclude){relative}")
        _git(repo, "add", "-A", "--", *pathspecs, env=env)
        _git(repo, "diff", "--cached", "--binary", f"--output={patch_path}", "HEAD", env=env)


def _unpack_head(repo: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mtf-archive-") as tmp:
        archive = Path(tmp) / "head.tar"
        _git(repo, "archive", "--format=tar", f"--output={archive}", "HEAD")
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(target, filter="data")
            else:  # pragma: no cover - old patch releases
                tar.extractall(target)


def _apply_patch(target: Path, patch_path: Path) -> None:
    # GIT_CEILING_DIRECTORIES stops git from finding an enclosing repository (the snapshot may
    # live inside the user's project), so `git apply` acts on plain files in `target`.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(target.parent.resolve())}
    run_command(
        ["git", "apply", "--whitespace=nowarn", str(patch_path.resolve())],
        cwd=target,
        env=env,
        timeout_s=_GIT_TIMEOUT_S,
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
    commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    branch = "" if branch == "HEAD" else branch
    excluded = [Path(snapshots_dir), *(exclude or [])]
    if not copy_code:
        with tempfile.TemporaryDirectory(prefix="mtf-patch-") as tmp:
            patch = Path(tmp) / PATCH_FILENAME
            _write_uncommitted_patch(repo, excluded, patch)
            is_dirty = patch.stat().st_size > 0
        return CodeVersion(str(root), str(root), commit, branch, is_dirty, None, created_at)
    target = (
        Path(snapshots_dir).resolve()
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{commit[:10]}-{uuid.uuid4().hex[:6]}"
    )
    code_root = target / "code"
    code_root.mkdir(parents=True)
    patch_path = target / PATCH_FILENAME
    _write_uncommitted_patch(repo, excluded, patch_path)
    _unpack_head(repo, code_root)
    is_dirty = patch_path.stat().st_size > 0
    if is_dirty:
        if patch_path.stat().st_size > _LARGE_PATCH_BYTES:
            logger.warning(
                "uncommitted changes in %s are %d bytes; is a data file untracked?",
                repo,
                patch_path.stat().st_size,
            )
        _apply_patch(code_root, patch_path)
    else:
        patch_path.unlink()
    code_dir = code_root / root.relative_to(repo)
    return CodeVersion(
        str(root),
        str(code_dir),
        commit,
        branch,
        is_dirty,
        str(patch_path) if is_dirty else None,
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
    try:
        return CodeVersion(**data)
    except TypeError as err:
        raise LauncherError(f"{path} is not a code version record: {err}") from err
