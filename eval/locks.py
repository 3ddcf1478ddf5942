"""One writer per directory: an advisory ``flock`` held for as long as a run (or a cache fill) writes.

Two ``svip bench`` processes on one run directory (the same command started
from two terminals, a retried job) each saw the other's missing records as
their own and ran them twice. The lock makes the second one stop at once,
naming the holder. It is a kernel lock on an open file, so it goes away with
the process however that ends (exit, Ctrl-C, SIGKILL, a crash): there is no
stale lock to clean up by hand. The holder's pid and host are written into
the lock file only so the refusal can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

__all__ = ["LOCK_NAME", "DirectoryBusy", "DirectoryLock", "DirectoryNotWritable"]

LOCK_NAME = ".lock"


class DirectoryBusy(RuntimeError):
    """Another live process holds the directory's lock."""


class DirectoryNotWritable(RuntimeError):
    """The directory cannot be created or written (read-only, immutable, no permission, disk full)."""


class DirectoryLock:
    """``with DirectoryLock(path, "run"):`` -- exclusive, non-blocking; ``DirectoryBusy`` when taken.

    ``remove_if_unused``: when nothing but the lock file is in ``path`` on
    release, the lock file goes (and ``path`` too if the lock created it), so
    a start that failed leaves nothing behind. ``name``: the lock file's name
    (one directory can hold locks for several entries, a model cache does).
    ``wait``: block until the holder is done instead (a second reader of a
    model cache waits for the first one's preparation, then finds it done).
    """

    def __init__(
        self,
        path: Path,
        what: str = "directory",
        *,
        remove_if_unused: bool = False,
        name: str = LOCK_NAME,
        wait: bool = False,
    ) -> None:
        self.path, self.what, self.remove_if_unused, self.name = Path(path), what, remove_if_unused, name
        self.wait = wait
        self._handle = None
        self._created = False

    @property
    def lock_path(self) -> Path:
        return self.path / self.name

    def acquire(self) -> DirectoryLock:
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+", encoding="utf-8")
        except OSError as error:
            raise DirectoryNotWritable(
                f"cannot write in {self.path} ({error.strerror or error}); nothing was started: make it writable "
                "or use another directory"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            if self.wait:
                print(f"[lock] waiting for the {self.what} by {holder} ({self.lock_path})", flush=True)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                return self._hold(handle)
            handle.close()
            raise DirectoryBusy(
                f"{self.path} is in use by another {self.what} ({holder}); wait for it to finish or use another directory"
            ) from None
        return self._hold(handle)

    def _hold(self, handle) -> DirectoryLock:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        if self.remove_if_unused and _only(self.path, self.name):
            self.lock_path.unlink(missing_ok=True)  # still locked: a waiter that opened it fails, a newcomer recreates
            if self._created:
                self.path.rmdir()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def _only(path: Path, name: str) -> bool:
    try:
        return [p.name for p in path.iterdir()] == [name]
    except OSError:
        return False
