"""take_snapshot against real git repositories of every shape a research project comes in.

Each test builds the repository with the git command line, snapshots it the way the launchers
do (the experiments directory excluded, the snapshots stored inside it) and checks the copy, the
record and that the user's index and working tree are exactly as before.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from model_training_framework.launch.snapshot import take_snapshot
from model_training_framework.runner import LocalLauncher
from model_training_framework.slurm import SLURMLauncher, read_code_version

IDENTITY = ["-c", "user.name=mtf-test", "-c", "user.email=mtf@test"]


@pytest.fixture(autouse=True)
def _no_user_git_config(tmp_path, monkeypatch):
    """git sees no global or system config (no identity, no user excludes), and no repository
    above tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name in [k for k in os.environ if k.startswith("GIT_") and k.endswith(("_DIR", "_FILE"))]:
        if name != "GIT_CEILING_DIRECTORIES":
            monkeypatch.delenv(name)


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *IDENTITY, "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def make_repo(path: Path, files: dict[str, str], *, commit: bool = True) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    if commit:
        git(path, "add", "-A")
        git(path, "commit", "-qm", "first")
    return path


def user_state(repo: Path) -> tuple[bytes, str]:
    """The user's index file and `git status` (but for the experiments dir the snapshot
    creates): a snapshot must change neither."""
    index = Path(git(repo, "rev-parse", "--git-path", "index"))
    index = index if index.is_absolute() else repo / index
    status = git(repo, "--no-optional-locks", "status", "--porcelain")  # does not write the index
    status = "\n".join(line for line in status.splitlines() if line != "?? experiments/")
    return (index.read_bytes() if index.exists() else b""), status


def snapshot(project: Path, *, copy_code: bool = True):
    experiments = project / "experiments" / "grid"
    return take_snapshot(
        project, experiments / ".mtf_code", exclude=[experiments], copy_code=copy_code
    )


def files_of(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): p.read_text()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- repository shapes
def test_repository_that_ignores_its_experiment_outputs(tmp_path):
    repo = make_repo(
        tmp_path / "repo",
        {".gitignore": "experiments/\nruns/\n*.ckpt\n", "train.py": "A = 1\n", "lib/util.py": ""},
    )
    (repo / "train.py").write_text("A = 2\n")  # tracked edit
    (repo / "lib" / "new.py").write_text("NEW = 1\n")  # untracked, not ignored
    (repo / "runs").mkdir()
    (repo / "runs" / "model.ckpt").write_text("weights")  # ignored
    (repo / "experiments" / "grid").mkdir(parents=True)
    (repo / "experiments" / "grid" / "config.yaml").write_text("x: 1\n")  # ignored, excluded
    git(repo, "add", "lib/util.py")  # something staged in the user's index
    before = user_state(repo)

    version = snapshot(repo)

    assert user_state(repo) == before
    assert version.commit == git(repo, "rev-parse", "HEAD")
    assert version.branch == "main" and version.dirty is True
    assert files_of(Path(version.code_dir)) == {
        ".gitignore": "experiments/\nruns/\n*.ckpt\n",
        "train.py": "A = 2\n",
        "lib/util.py": "",
        "lib/new.py": "NEW = 1\n",
    }
    patch = Path(version.patch_path).read_text()
    assert "+A = 2" in patch and "+NEW = 1" in patch and "weights" not in patch
    # a second snapshot does not copy the first one (it lives in the ignored experiments dir)
    assert "mtf_code" not in str(files_of(Path(snapshot(repo).code_dir)))


def test_experiments_dir_that_git_does_not_ignore_is_left_out(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "A = 1\n"})
    (repo / "experiments" / "grid").mkdir(parents=True)
    (repo / "experiments" / "grid" / "config.yaml").write_text("x: 1\n")
    (repo / "experiments" / "notes.md").write_text("kept\n")  # outside the excluded dir

    first = snapshot(repo)
    second = snapshot(repo)

    assert files_of(Path(second.code_dir)) == {
        "train.py": "A = 1\n",
        "experiments/notes.md": "kept\n",
    }
    assert Path(first.code_dir).is_dir()


def test_clean_repository_is_not_dirty_and_keeps_no_patch(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "A = 1\n", ".gitignore": "experiments/\n"})
    version = snapshot(repo)
    assert version.dirty is False and version.patch_path is None
    assert files_of(Path(version.code_dir))["train.py"] == "A = 1\n"
    assert snapshot(repo, copy_code=False).dirty is False


def test_submodule_code_and_its_uncommitted_changes_are_in_the_snapshot(tmp_path):
    library = make_repo(tmp_path / "library", {"lib.py": "VERSION = 1\n"})
    repo = make_repo(tmp_path / "repo", {"train.py": "import lib\n"})
    git(
        repo,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(library),
        "vendor/lib",
    )
    git(repo, "commit", "-qm", "add the library")
    (repo / "vendor" / "lib" / "lib.py").write_text("VERSION = 2\n")  # edited inside the submodule
    (repo / "vendor" / "lib" / "extra.py").write_text("EXTRA = 1\n")
    before = user_state(repo), user_state(repo / "vendor" / "lib")

    version = snapshot(repo)

    assert (user_state(repo), user_state(repo / "vendor" / "lib")) == before
    code = Path(version.code_dir)
    assert (code / "vendor" / "lib" / "lib.py").read_text() == "VERSION = 2\n"
    assert (code / "vendor" / "lib" / "extra.py").read_text() == "EXTRA = 1\n"
    assert version.dirty is True
    patch = Path(version.patch_path).read_text()
    assert "b/vendor/lib/lib.py" in patch and "+VERSION = 2" in patch
    assert snapshot(repo, copy_code=False).dirty is True


def test_repository_without_any_commit(tmp_path):
    repo = make_repo(
        tmp_path / "repo", {"train.py": "A = 1\n", ".gitignore": "experiments/\n"}, commit=False
    )
    git(repo, "add", "train.py")
    before = user_state(repo)

    version = snapshot(repo)

    assert user_state(repo) == before
    assert version.commit is None and version.branch == "main" and version.dirty is True
    assert files_of(Path(version.code_dir)) == {
        ".gitignore": "experiments/\n",
        "train.py": "A = 1\n",
    }
    assert "+A = 1" in Path(version.patch_path).read_text()
    assert snapshot(repo, copy_code=False).commit is None


def test_detached_head(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "A = 1\n"})
    first = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("A = 2\n")
    git(repo, "commit", "-qam", "second")
    git(repo, "checkout", "-q", "--detach", first)

    version = snapshot(repo)

    assert version.commit == first and version.branch == "" and version.dirty is False
    assert (Path(version.code_dir) / "train.py").read_text() == "A = 1\n"


def test_no_git_identity_is_needed(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "A = 1\n"})
    git(repo, "config", "user.useConfigOnly", "true")  # any commit without -c identity fails
    (repo / "train.py").write_text("A = 2\n")
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(["git", "-C", str(repo), "commit", "-qam", "x"], check=True)

    version = snapshot(repo)

    assert (Path(version.code_dir) / "train.py").read_text() == "A = 2\n"


def test_project_in_a_subfolder_runs_from_that_subfolder_of_the_snapshot(tmp_path):
    repo = make_repo(
        tmp_path / "repo", {".gitignore": "experiments/\n", "examples/prod/components.py": ""}
    )
    version = snapshot(repo / "examples" / "prod")
    assert Path(version.code_dir).parts[-2:] == ("examples", "prod")
    assert (Path(version.code_dir) / "components.py").is_file()


def test_outside_any_repository(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("A = 1\n")
    version = snapshot(project)
    assert version.commit is None and version.dirty is None
    assert Path(version.code_dir) == project.resolve()


# ---------------------------------------------------------------- through the launchers
def test_launchers_work_where_experiments_are_gitignored(tmp_path):
    repo = make_repo(tmp_path / "repo", {".gitignore": "experiments/\n", "train.py": ""})
    command = ("{PYTHON}", "-c", "pass")
    experiments = [{"experiment_name": "one"}, {"experiment_name": "two"}]

    slurm = SLURMLauncher(
        project_root=repo, experiments_dir=repo / "experiments" / "grid", command=command
    ).submit_experiment_batch(experiments, None, dry_run=True)
    local = LocalLauncher(
        repo, repo / "experiments" / "local", command=command
    ).submit_experiment_batch(experiments, None, 2)

    assert slurm.success_count == 2 and local.success_count == 2
    assert read_code_version(repo / "experiments" / "grid" / "one").commit == git(
        repo, "rev-parse", "HEAD"
    )
    assert read_code_version(repo / "experiments" / "local" / "two").dirty is False


# ---------------------------------------------------------------- the record's keys
def test_the_record_names_the_dirty_flag_as_the_trainer_reads_it(tmp_path, monkeypatch):
    """One name for the flag: the launcher writes the key the trainer's reader looks up."""
    from model_training_framework.trainer.state.code_version import (
        CODE_VERSION_FILE_ENV,
        DIRTY,
        LEGACY_DIRTY,
        get_code_version,
    )

    repo = make_repo(tmp_path / "repo", {"train.py": ""})
    (repo / "train.py").write_text("print('edited')\n")
    LocalLauncher(repo, command=("{PYTHON}", "-c", "pass")).submit_experiment_batch(
        [{"experiment_name": "one"}], None
    )
    record_path = repo / "experiments" / "one" / "code_version.json"
    record = json.loads(record_path.read_text())

    assert record[DIRTY] is True and LEGACY_DIRTY not in record
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(record_path))
    assert get_code_version()[DIRTY] is True


def test_a_record_written_with_the_old_flag_name_still_reads(tmp_path):
    record = {
        "project_root": str(tmp_path),
        "code_dir": str(tmp_path),
        "commit": "cafe01",
        "branch": "main",
        "is_dirty": True,
        "patch_path": None,
        "created_at": "2026-12-01T00:00:00+0000",
    }
    (tmp_path / "code_version.json").write_text(json.dumps(record))

    assert read_code_version(tmp_path).dirty is True
