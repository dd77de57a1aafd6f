"""A recorded file-system trace and the disk images a power loss could leave at each point of it.

:class:`Recorder` stands in for ``os`` in the modules that write a file: it performs every call
and records the ones that change the disk (open with create or truncate, write, ftruncate, fsync,
fdatasync, rename, link, unlink, and the directory's fsync). :func:`crash_images` replays the trace
on a model of a disk that keeps only what was synced: file data is durable after the file's fsync,
a name (create, rename, link, unlink) after its directory's fsync. At a crash, each file holds its
durable bytes plus any prefix of what was written since (when the new bytes extend the old), and
the directory holds either its durable entries or all of them (the two extremes of what a
journaling file system may have committed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Op:
    kind: str  # create | write | truncate | fsync | rename | link | unlink | fsync_dir
    name: str = ""
    other: str = ""
    offset: int = 0
    data: bytes = b""


class Recorder:
    """``os`` for the writer modules, recording what changes files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._dir = os.path.realpath(directory)
        self._fds: dict[int, str | None] = {}  # fd -> name in the directory, or "" for the directory
        self.ops: list[Op] = []

    def _name(self, path: Any) -> str | None:
        full = os.path.realpath(os.fspath(path))
        if full == self._dir:
            return ""
        if os.path.dirname(full) == self._dir:
            return os.path.basename(full)
        return None

    def open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        existed = os.path.exists(path)
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
        name = self._name(path)
        self._fds[fd] = name
        if name:
            if not existed and flags & os.O_CREAT:
                self.ops.append(Op("create", name))
            elif flags & os.O_TRUNC:
                self.ops.append(Op("truncate", name, offset=0))
        return fd

    def write(self, fd: int, data: Any) -> int:
        n = os.write(fd, data)
        name = self._fds.get(fd)
        if name:
            end = os.lseek(fd, 0, os.SEEK_CUR)
            self.ops.append(Op("write", name, offset=end - n, data=bytes(memoryview(data)[:n])))
        return n

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        n = os.pwrite(fd, data, offset)
        name = self._fds.get(fd)
        if name:
            self.ops.append(Op("write", name, offset=offset, data=bytes(memoryview(data)[:n])))
        return n

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        name = self._fds.get(fd)
        if name:
            self.ops.append(Op("truncate", name, offset=size))

    def fsync(self, fd: int) -> None:
        os.fsync(fd)
        name = self._fds.get(fd)
        if name == "":
            self.ops.append(Op("fsync_dir"))
        elif name:
            self.ops.append(Op("fsync", name))

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)
        name = self._fds.get(fd)
        if name:
            self.ops.append(Op("fsync", name))

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)
        os.close(fd)

    def rename(self, src: Any, dst: Any) -> None:
        os.rename(src, dst)
        a, b = self._name(src), self._name(dst)
        if a and b:
            self.ops.append(Op("rename", a, b))

    replace = rename

    def link(self, src: Any, dst: Any) -> None:
        os.link(src, dst)
        a, b = self._name(src), self._name(dst)
        if a and b:
            self.ops.append(Op("link", a, b))

    def unlink(self, path: Any, *, dir_fd: int | None = None) -> None:
        os.unlink(path, dir_fd=dir_fd)
        name = self._name(path)
        if name:
            self.ops.append(Op("unlink", name))

    remove = unlink

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@dataclass
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""


class _Disk:
    def __init__(self) -> None:
        self.entries: dict[str, _Inode] = {}
        self.durable_entries: dict[str, _Inode] = {}

    def apply(self, op: Op) -> None:
        if op.kind == "create":
            self.entries[op.name] = _Inode()
        elif op.kind == "write":
            data = op.data
            buf = self.entries[op.name].data
            if len(buf) < op.offset:
                buf.extend(b"\0" * (op.offset - len(buf)))
            buf[op.offset : op.offset + len(data)] = data
        elif op.kind == "truncate":
            del self.entries[op.name].data[op.offset :]
        elif op.kind == "fsync":
            inode = self.entries[op.name]
            inode.durable = bytes(inode.data)
        elif op.kind == "rename":
            self.entries[op.other] = self.entries.pop(op.name)
        elif op.kind == "link":
            self.entries[op.other] = self.entries[op.name]
        elif op.kind == "unlink":
            self.entries.pop(op.name, None)
        elif op.kind == "fsync_dir":
            self.durable_entries = dict(self.entries)

    def images(self, target: str) -> Iterator[bytes | None]:
        """Every content ``target`` may have after a power loss now (None: no such file)."""
        seen: set[bytes | None] = set()
        for entries in (self.durable_entries, self.entries):
            inode = entries.get(target)
            if inode is None:
                variants: list[bytes | None] = [None]
            else:
                data, durable = bytes(inode.data), inode.durable
                if data.startswith(durable):
                    variants = [data[:n] for n in range(len(durable), len(data) + 1)]
                else:
                    variants = [durable, data]
            for v in variants:
                if v not in seen:
                    seen.add(v)
                    yield v


def crash_images(
    ops: list[Op], target: str, initial: dict[str, bytes] | None = None
) -> Iterator[tuple[int, bytes | None]]:
    """``(ops done, content of target)`` for every point of the trace and every image there.

    A crash in the middle of a write needs no points of its own: the bytes of a file not yet
    synced are enumerated at every length (every byte offset), which is what a torn write leaves.
    """
    disk = _Disk()
    for name, data in (initial or {}).items():
        disk.entries[name] = _Inode(bytearray(data), data)
    disk.durable_entries = dict(disk.entries)
    for i in range(len(ops) + 1):
        for image in disk.images(target):
            yield i, image
        if i < len(ops):
            disk.apply(ops[i])
