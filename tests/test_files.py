"""Tests for netbuilder.files: atomic writes, stale temp files and the run-folder lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netbuilder.data.files import atomic_write, atomic_write_bytes, remove_stale_temp_files
from netbuilder.errors import NetbuilderError
from netbuilder.training.folder import FolderLock


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_failed_write_keeps_the_old_file_and_names_it(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"old")

    def fail_halfway(handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    with pytest.raises(NetbuilderError, match=r"cannot write .*last\.pt: No space left"):
        atomic_write(target, fail_halfway)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_write_where_no_folder_can_be_is_one_line(tmp_path: Path) -> None:
    """A path under a regular file fails for every user, root included."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(NetbuilderError, match=r"cannot write .*: Not a directory"):
        atomic_write_bytes(tmp_path / "file" / "x", b"data")


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".last.pt.1234abcd.tmp").write_bytes(b"half")
    (tmp_path / "keep.txt").write_text("x")
    removed = remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] == [".last.pt.1234abcd.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from netbuilder.training.folder import FolderLock; "
            "lock = FolderLock(Path(sys.argv[1])); "
            "lock.acquire(); "
            "print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(NetbuilderError, match=rf"in use by another run \(pid {holder.pid} "):
            FolderLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with FolderLock(tmp_path):  # the kernel released the dead holder's lock
        pass
