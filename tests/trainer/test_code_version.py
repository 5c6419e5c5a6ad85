"""Code version: git commit and dirty flag, or the record of a SLURM code snapshot."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from model_training_framework.errors import ConfigError
from model_training_framework.trainer.state.code_version import (
    CODE_VERSION_FILE_ENV,
    get_code_version,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(CODE_VERSION_FILE_ENV, raising=False)
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "train.py").write_text("print('hi')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_clean_tree_reports_its_commit_and_not_dirty(repo):
    version = get_code_version(repo)

    assert version == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False, "source": "git"}


@needs_git
def test_changed_tracked_file_makes_it_dirty(repo):
    (repo / "train.py").write_text("print('changed')\n")

    assert get_code_version(repo)["dirty"] is True


@needs_git
def test_untracked_files_do_not_make_it_dirty(repo):
    (repo / "outputs.log").write_text("x")

    assert get_code_version(repo)["dirty"] is False


@needs_git
def test_subdirectory_of_a_repo_finds_the_repo(repo):
    sub = repo / "pkg"
    sub.mkdir()

    assert get_code_version(sub)["commit"] == git(repo, "rev-parse", "HEAD")


def test_outside_a_git_tree_both_fields_are_none(tmp_path, monkeypatch):
    monkeypatch.delenv(CODE_VERSION_FILE_ENV, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))

    assert get_code_version(tmp_path) == {"commit": None, "dirty": None, "source": None}


def test_without_git_installed_both_fields_are_none(tmp_path, monkeypatch):
    monkeypatch.delenv(CODE_VERSION_FILE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert get_code_version(tmp_path)["commit"] is None


def test_git_that_hangs_is_given_up_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(CODE_VERSION_FILE_ENV, raising=False)
    fake_git = tmp_path / "git"
    fake_git.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    fake_git.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with caplog.at_level(logging.WARNING):
        version = get_code_version(tmp_path, timeout_s=0.2)

    assert version["commit"] is None
    assert "took longer than" in caplog.text


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_snapshot_record_file_wins_over_git(tmp_path, monkeypatch, suffix):
    record = {"commit": "deadbeef", "dirty": True, "patch": "changes.patch"}
    path = tmp_path / f"code_version{suffix}"
    path.write_text(json.dumps(record))  # JSON is valid YAML too
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(path))

    assert get_code_version(tmp_path) == {**record, "source": "file"}


def test_record_written_by_the_slurm_snapshot_is_read(tmp_path, monkeypatch):
    from model_training_framework.launch.snapshot import CodeVersion, write_code_version

    version = CodeVersion(str(tmp_path), str(tmp_path), "cafe01", "main", True, "p.patch", "now")
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(write_code_version(tmp_path, version)))

    recorded = get_code_version()

    assert (recorded["commit"], recorded["dirty"], recorded["source"]) == ("cafe01", True, "file")
    assert recorded["patch_path"] == "p.patch"


def test_missing_record_file_is_a_config_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(tmp_path / "nope.yaml"))

    with pytest.raises(ConfigError, match=CODE_VERSION_FILE_ENV):
        get_code_version()


def test_record_without_dirty_flag_is_a_config_error(tmp_path, monkeypatch):
    path = tmp_path / "code_version.yaml"
    path.write_text("commit: abc\n")
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(path))

    with pytest.raises(ConfigError, match="'dirty'"):
        get_code_version()


def test_record_with_the_old_dirty_key_is_read_under_the_one_name(tmp_path, monkeypatch):
    path = tmp_path / "code_version.json"
    path.write_text(json.dumps({"commit": "cafe01", "is_dirty": True}))
    monkeypatch.setenv(CODE_VERSION_FILE_ENV, str(path))

    assert get_code_version() == {"commit": "cafe01", "dirty": True, "source": "file"}
