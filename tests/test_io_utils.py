"""Atomic file writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_training_framework.io_utils import (
    atomic_symlink,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    is_temp_file,
    remove_stale_temp_files,
    temp_path_for,
)


def test_atomic_write_text_creates_and_replaces(tmp_path):
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "a: 1\n")
    atomic_write_text(target, "a: 2\n")

    assert target.read_text() == "a: 2\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_atomic_write_bytes_writes_exact_bytes(tmp_path):
    target = tmp_path / "blob"
    atomic_write_bytes(target, bytes(range(256)))

    assert target.read_bytes() == bytes(range(256))


def test_failing_writer_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"old")

    def half_then_fail(handle):
        handle.write(b"new but incomplete")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(target, half_then_fail)

    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_new_files_get_umask_permissions_not_private_temp_ones(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "manifest.json", "{}")
    finally:
        os.umask(old_umask)

    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_atomic_symlink_replaces_an_existing_link(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    link = tmp_path / "latest"
    atomic_symlink(link, "a")
    atomic_symlink(link, "b")

    assert os.readlink(link) == "b"
    assert link.read_text() == "b"
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "latest"]


def test_temp_paths_are_recognised_and_unique(tmp_path):
    first, second = temp_path_for(tmp_path / "x.ckpt"), temp_path_for(tmp_path / "x.ckpt")

    assert first != second
    assert first.parent == tmp_path
    assert is_temp_file(first)
    assert not is_temp_file(tmp_path / "x.ckpt")
    assert not is_temp_file(tmp_path / "notes.tmp")


def test_remove_stale_temp_files_removes_only_temp_files(tmp_path):
    stale = temp_path_for(tmp_path / "x.ckpt")
    stale.write_bytes(b"partial")
    stale_link = temp_path_for(tmp_path / "latest.ckpt")
    os.symlink("missing", stale_link)
    kept = tmp_path / "x.ckpt"
    kept.write_bytes(b"complete")

    removed = remove_stale_temp_files(tmp_path)

    assert sorted(removed) == sorted([stale, stale_link])
    assert os.listdir(tmp_path) == ["x.ckpt"]


def test_remove_stale_temp_files_in_a_missing_directory_is_a_no_op(tmp_path):
    assert remove_stale_temp_files(Path(tmp_path / "absent")) == []
