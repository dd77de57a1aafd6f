"""One writer per memory file, across threads and processes: an ``flock`` on a sidecar file.

The lock cannot live on the memory file itself, because every save renames a new inode over it.
``flock`` locks belong to an open file description, so two :class:`FileLock` objects (in two
threads, or two processes) on the same path exclude each other; one object is used by one task at
a time (the store serialises its own callers).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_path(path: Path) -> Path:
    """The sidecar lock file of a memory file: ``<name>.lock`` next to it."""
    return path.with_name(path.name + ".lock")


class FileLock:
    """An exclusive advisory lock on ``<memory file>.lock``; blocking, so call it off the loop."""

    def __init__(self, path: Path) -> None:
        self._path = lock_path(path)
        self._fd: int | None = None
        self._held = False

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        return self._fd

    def acquire(self) -> None:
        fcntl.flock(self._open(), fcntl.LOCK_EX)
        self._held = True

    def generation(self) -> int | None:
        """The commit counter kept in the lock file (None if it cannot be read).

        Every commit by a beamish writer bumps it under the lock, so a cache can tell that the
        file changed even when a rewrite happens to reuse the inode number, size and mtime tick.
        """
        try:
            raw = os.pread(self._open(), 8, 0)
        except OSError:
            return None
        return int.from_bytes(raw.ljust(8, b"\0"), "little")

    def bump_generation(self) -> int:
        """Increment the commit counter; call only while holding the lock."""
        value = ((self.generation() or 0) + 1) % (1 << 64)
        os.pwrite(self._open(), value.to_bytes(8, "little"), 0)
        return value

    def release(self) -> None:
        if self._fd is not None and self._held:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @property
    def held(self) -> bool:
        return self._held

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
