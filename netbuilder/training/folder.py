"""A run's folder: where it is by default, the lock that keeps a second run out while one
writes there, and the rule that a folder holding a run is continued or replaced only when
asked."""

from __future__ import annotations

import fcntl
import os
import re
import socket
from datetime import datetime
from pathlib import Path
from typing import IO

from ..data.files import remove_stale_temp_files
from ..errors import NetbuilderError
from .checkpoint import BEST, LAST
from .records import RUNS_DIR, timestamp

LOCK_FILE = ".lock"
RUN_FILES = (
    "spec.yaml",
    "metrics.csv",
    "curves.png",
    LAST,
    BEST,
    "confusion.png",
    "confusion.csv",
    "summary.txt",
    "requirements.json",
)


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
            raise NetbuilderError(
                f"cannot lock {self.path.parent}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise NetbuilderError(
                f"{self.path.parent} is in use by another run ({holder}); "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{datetime.now().isoformat(timespec='seconds')}\n"
        )
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


def default_run_dir(spec_name: str) -> Path:
    """runs/<spec name>-<YYYYmmdd-HHMMSS>, the name made safe as a folder name: a spec named
    `../../x` still writes under runs/."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec_name).strip("._-")[:64] or "run"
    return RUNS_DIR / f"{safe}-{timestamp()}"


def open_run_folder(run_dir: Path, resume: bool, overwrite: bool) -> FolderLock:
    """Create and lock the run folder; clean what a killed run left; refuse to mix two runs."""
    if run_dir.exists() and not run_dir.is_dir():
        raise NetbuilderError(f"--out {run_dir} is a file; expected a folder for the run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetbuilderError(
            f"cannot create the run folder {run_dir}: {exc.strerror or exc}"
        ) from None
    lock = FolderLock(run_dir)
    lock.acquire()
    try:
        remove_stale_temp_files(run_dir)
        present = [name for name in RUN_FILES if (run_dir / name).exists()]
        if resume and not (run_dir / LAST).is_file():
            raise NetbuilderError(f"nothing to resume in {run_dir}: {LAST} not found")
        if present and not resume and not overwrite:
            raise NetbuilderError(
                f"{run_dir} already holds a run ({', '.join(present)}); "
                "continue it with --resume, replace it with --overwrite, "
                "or choose another --out"
            )
        if overwrite and not resume:
            for name in present:
                (run_dir / name).unlink()
    except BaseException:
        lock.release()
        raise
    return lock
