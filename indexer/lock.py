"""One writer per data dir: an advisory lock file that names its holder."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from indexer.errors import IndexLockedError


class WriterLock:
    """``with WriterLock(dir):`` holds the data dir's writer lock or raises IndexLockedError.

    ``wait`` seconds > 0 waits that long for the other writer to finish first.
    The kernel drops the lock when its process dies, even by SIGKILL.
    """

    def __init__(self, data_dir: str | os.PathLike, wait: float = 0.0):
        self.path = Path(data_dir) / "writer.lock"
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise IndexLockedError(
                        f"another searchd process (pid {holder}) is writing to {self.path.parent}; "
                        f"wait for it to finish and run this again") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
