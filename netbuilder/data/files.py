"""Writing files so that a crash never leaves half of one: a temp file in the same folder,
fsynced, renamed over the target. Checkpoints, run records, dataset caches and exports all
write through here. Plain OS calls; no torch."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import NetbuilderError

TEMP_SUFFIX = ".tmp"  # temp files are ".<name>.<random>.tmp" next to their target
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # where a command takes a checkpoint or a spec


def is_checkpoint_path(path: str | Path) -> bool:
    """A checkpoint by its name (`export`, `profile` and the like take a spec otherwise)."""
    return Path(path).suffix in CHECKPOINT_SUFFIXES


def is_onnx_path(path: str | Path) -> bool:
    """An exported ONNX model by its name (`eval` scores it with ONNX Runtime)."""
    return Path(path).suffix.lower() == ".onnx"


def check_target(path: Path) -> None:
    """What netbuilder writes may replace a regular file, never anything else: not a device
    (`--out /dev/null`, as root, would lose the device), a folder, a pipe or a link."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise NetbuilderError(
                f"cannot write {path}: folder {path.parent} does not exist"
            ) from None
        return
    except OSError as exc:
        raise NetbuilderError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(status.st_mode):
        raise NetbuilderError(f"{path} is a folder; give a file name")
    if not stat.S_ISREG(status.st_mode):
        raise NetbuilderError(
            f"{path} exists and is not a regular file (a device, pipe, socket "
            "or link); netbuilder replaces regular files only"
        )


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the same folder, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half of either:
    the data is fsynced before the rename, and the folder after it so the rename itself lasts.
    An OSError (no space left, read-only, permissions) becomes a NetbuilderError naming `path`.
    """

    def write_file(temp: Path) -> None:
        # os.open with 0o666 lets the umask decide the mode, as for any new file
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)

    atomic_write_file(path, write_file)


def atomic_write_file(path: str | Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """`atomic_write` for writers that want a file name (exporters): `write(temp)` fills a temp
    file in the same folder (ending in `suffix`), which is fsynced and renamed over `path`."""
    path = Path(path)
    check_target(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}{suffix}")
    try:
        try:
            write(temp)
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # a read-only folder: the real error is above
                temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise NetbuilderError(f"cannot write {path}: {exc.strerror or exc}") from None
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    atomic_write(path, write)


def fsync_dir(folder: Path) -> None:
    """Persist a rename; some platforms (Windows) cannot open a folder, which is fine there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temp files a killed run left behind (they never replaced anything). Call it only
    while holding the folder's lock: another writer's temp file is in flight otherwise."""
    removed = []
    for stale in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
