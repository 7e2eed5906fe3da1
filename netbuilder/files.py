"""Writing files so that a crash never leaves half of one, and a lock so that two runs never
share a folder. Plain OS calls; no torch."""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

from .errors import NetbuilderError

TEMP_SUFFIX = ".tmp"  # temp files are ".<name>.<random>.tmp" next to their target
LOCK_FILE = ".lock"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the same folder, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half of either:
    the data is fsynced before the rename, and the folder after it so the rename itself lasts.
    An OSError (no space left, read-only, permissions) becomes a NetbuilderError naming `path`.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        # os.open with 0o666 lets the umask decide the mode, as for any new file
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise NetbuilderError(f"cannot write {path}: {exc.strerror or exc}") from None
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


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


class FolderLock:
    """An exclusive fcntl lock on `folder/.lock`, held while a run writes into the folder.

    The kernel releases it when the process ends, however it ends, so a killed run never leaves
    a folder locked; the file itself stays, holding the last holder's pid, host and start time.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        try:
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise NetbuilderError(f"cannot lock {self.path.parent}: {exc.strerror or exc}"
                                  ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise NetbuilderError(f"{self.path.parent} is in use by another run ({holder}); "
                                  "wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
