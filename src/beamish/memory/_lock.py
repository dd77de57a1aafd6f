"""One writer per memory file, across threads and processes: an ``flock`` on a sidecar file.

The lock cannot live on the memory file itself, because every save renames a new inode over it.
``flock`` locks belong to an open file description, so two :class:`FileLock` objects (in two
threads, or two processes) on the same path exclude each other; one object is used by one task at
a time (the store serialises its own callers).
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

#: After the commit counter: the counter value of the last commit that kept this record, the
#: counter value where its chain of appends began, and the file's identity after that commit.
_RECORD = struct.Struct("<7Q")


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
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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

    def write_record(self, generation: int, chain: int, ident: tuple[int, int, int, int]) -> None:
        """Note, under the lock, what the commit ``generation`` left: the file's identity, and
        since which commit (``chain``) every commit only appended to the file, with no writer
        outside the lock in between. Another instance holding the version of any commit since
        ``chain`` can then read just the appended bytes instead of the whole file."""
        os.pwrite(self._open(), _RECORD.pack(generation, chain, *ident, 0), 8)

    def read_record(self) -> tuple[int, int, tuple[int, int, int, int]] | None:
        """``(generation, chain, identity)`` as :meth:`write_record` left them, if valid now: the
        last commit kept it (a writer that does not keep it only bumps the counter)."""
        try:
            raw = os.pread(self._open(), 8 + _RECORD.size, 0)
        except OSError:
            return None
        if len(raw) < 8 + _RECORD.size:
            return None
        generation, chain, dev, ino, size, mtime, _ = _RECORD.unpack_from(raw, 8)
        if generation != int.from_bytes(raw[:8], "little"):
            return None
        return generation, chain, (dev, ino, size, mtime)

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
