"""Appending to the memory file: a durable write whose cost does not grow with the graph.

Creating entities or relations only adds lines, and the reference's loader sorts lines by their
``"type"`` field, so the new lines can go at the end of the file: one ``write`` and one
``fdatasync`` instead of rewriting the whole file. The price is layout: an entity appended after
the relations is not where the reference would put it. Such a file loads the same in both servers;
the store measures that out-of-place tail (:func:`tail_size`) and compacts the file back to the
canonical layout (entities, then relations) by a full atomic rewrite when the tail grows past a
bound, when the store is idle, and on close.

A write killed half-way leaves a torn last line that was never acknowledged; loading moves it to
quarantine like any corrupt line, so nothing acknowledged is at risk: earlier lines are never
touched by an append. Linux copies a write into the page cache one page-aligned chunk at a time and
stops between chunks for SIGKILL, so an append that would straddle a page boundary is padded with
newlines up to it (both loaders skip blank lines): an append of up to a page then lands in one
chunk, and a kill can only cut it before its first line, never inside one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from beamish.memory._jsonl import FileIdentity, fsync_dir, identity

_RELATION_START = b'{"type":"relation"'
_ENTITY_START = b'{"type":"entity"'


class FileMoved(Exception):
    """The file on disk is not the version the append was meant for (a writer outside the lock
    replaced it); the caller rewrites instead."""


PAGE = 4096


def append_payload(size: int, lines: Sequence[bytes]) -> tuple[bytes, int]:
    """The bytes that add ``lines`` to a file of ``size`` bytes in the reference's format (lines
    joined by newlines, no trailing newline, so a separator first unless the file is empty), and
    how many newlines of padding lead them so that they start on a page (0 when they fit in the
    current page, or are longer than a page anyway)."""
    body = b"\n".join(lines) if size == 0 else b"\n" + b"\n".join(lines)
    used = size % PAGE
    if used == 0 or used + len(body) <= PAGE or len(body) > PAGE:
        return body, 0
    pad = PAGE - used
    return b"\n" * pad + body, pad


def append_durably(path: Path, payload: bytes, expected: FileIdentity, *, sync_dir: bool) -> FileIdentity:
    """Append ``payload`` to ``path`` and make it durable (``fdatasync``; the directory too when
    ``sync_dir``, for a file version nobody here made durable yet); returns the new identity.

    Raises :class:`FileMoved` without writing when the file is not ``expected`` (device, inode,
    size). On a failed write the file is cut back to its old size, so no partial line stays.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if identity(before)[:3] != expected[:3]:
            raise FileMoved(str(path))
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fdatasync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before.st_size)
            raise
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if sync_dir:
        fsync_dir(path.parent)
    return identity(after)


def tail_size(data: bytes, canonical: bytes | None) -> int:
    """How many bytes at the end of ``data`` are out of the canonical layout: 0 when the file is
    byte for byte what the reference would write (``canonical``), else the bytes from the first
    entity line that follows a relation line (the usual case: entities appended after the
    relations) or the first blank line (padding before an append), else the whole file
    (something else differs: spacing, a trailing newline)."""
    if canonical is not None and data == canonical:
        return 0
    start = 0 if data.startswith(_RELATION_START) else data.find(b"\n" + _RELATION_START)
    late = data.find(b"\n" + _ENTITY_START, start) if start >= 0 else -1
    padded = data.find(b"\n\n")
    first = min(p for p in (late, padded, len(data)) if p >= 0)
    return len(data) - first if first < len(data) else max(len(data), 1)
