"""``KnowledgeGraph``: the nine operations on one memory file, with no lost writes.

Every read-modify-write runs under the file lock, on a graph that is re-read only when the file's
identity (device, inode, size, mtime) changed underneath. Concurrent writes are grouped: whatever
arrives while one commit is on disk goes into the next, so N parallel calls cost a few fsyncs, not
N. A write is acknowledged only once its bytes and the rename are durable. File work runs in a
worker thread so a slow disk never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from beamish._exceptions import MemoryGraphError
from beamish.memory._graph import Entity, Graph, GraphDict, ObservationResult, Relation
from beamish.memory._jsonl import (
    FileIdentity,
    Repair,
    append_quarantine,
    discard,
    identity,
    parse,
    read_file,
    replace_durably,
    report,
    stray_temps,
    write_durably,
)
from beamish.memory._lock import FileLock
from beamish.memory._schema import ArgumentError, check_arguments

T = TypeVar("T")

_UNLOADED: Any = object()

#: Temp files older than this are swept when the file is re-read under the lock (a killed writer's
#: leftovers); the margin leaves alone a save of some other program that is under way.
STRAY_TEMP_AGE_S = 60.0

_Op = Callable[[Graph], Any]


def _discard_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # a leftover is swept later like any stray temp file
            discard(path)


class KnowledgeGraph:
    """The shared memory as a Python object: ``await kg.create_entities([...])`` and so on.

    Methods take and return the reference server's structures (plain dicts and lists), so the
    agent layer can use it in-process as the ``memory`` tool and get what an MCP client would.
    ``on_repair`` is called with each :class:`Repair` that loading made (the runtime turns them
    into ``memory.repaired`` events). One instance belongs to one event loop; instances in other
    threads or processes share the file safely through the lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        on_repair: Callable[[Repair], None] | None = None,
        report_repairs: bool = True,
    ) -> None:
        self.path = Path(path).absolute()
        self._on_repair = on_repair
        self._report_repairs = report_repairs
        self._lock = FileLock(self.path)
        self._graph = Graph()
        self._identity: FileIdentity | None = _UNLOADED
        self._generation: int | None = None
        self._old_versions: list[Path] = []
        self._discarding: asyncio.Future[None] | None = None
        self._busy = asyncio.Lock()
        self._pending: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.repairs: list[Repair] = []
        #: How many durable commits this instance made (a group commit counts once).
        self.commits = 0
        #: How many times the file was (re)read: once at first use, then only when it changed.
        self.loads = 0

    # -- the nine operations ----------------------------------------------------------------------

    async def create_entities(self, entities: Sequence[Entity]) -> list[Entity]:
        args = check_arguments("create_entities", {"entities": entities})
        result: list[Entity] = await self._write(lambda g: g.create_entities(args["entities"]))
        return result

    async def create_relations(self, relations: Sequence[Relation]) -> list[Relation]:
        args = check_arguments("create_relations", {"relations": relations})
        result: list[Relation] = await self._write(lambda g: g.create_relations(args["relations"]))
        return result

    async def add_observations(self, observations: Sequence[Mapping[str, Any]]) -> list[ObservationResult]:
        args = check_arguments("add_observations", {"observations": observations})
        result: list[ObservationResult] = await self._write(
            lambda g: g.add_observations(args["observations"])
        )
        return result

    async def delete_entities(self, entity_names: Sequence[str]) -> None:
        args = check_arguments("delete_entities", {"entityNames": entity_names})
        await self._write(lambda g: g.delete_entities(args["entityNames"]))

    async def delete_observations(self, deletions: Sequence[Mapping[str, Any]]) -> None:
        args = check_arguments("delete_observations", {"deletions": deletions})
        await self._write(lambda g: g.delete_observations(args["deletions"]))

    async def delete_relations(self, relations: Sequence[Relation]) -> None:
        args = check_arguments("delete_relations", {"relations": relations})
        await self._write(lambda g: g.delete_relations(args["relations"]))

    async def read_graph(self) -> GraphDict:
        return await self._read(lambda g: g.read_graph())

    async def search_nodes(self, query: str) -> GraphDict:
        args = check_arguments("search_nodes", {"query": query})
        return await self._read(lambda g: g.search_nodes(args["query"]))

    async def open_nodes(self, names: Sequence[str]) -> GraphDict:
        args = check_arguments("open_nodes", {"names": names})
        return await self._read(lambda g: g.open_nodes(args["names"]))

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a tool by its MCP name and return its ``structuredContent``.

        Raises :class:`MemoryGraphError` with the exact text the reference server puts in its
        error result (argument problems, unknown tools, missing entities).
        """
        try:
            args = check_arguments(tool, dict(arguments) if arguments is not None else None)
        except ArgumentError as exc:
            raise MemoryGraphError(str(exc)) from None
        if tool == "create_entities":
            return {"entities": await self._write(lambda g: g.create_entities(args["entities"]))}
        if tool == "create_relations":
            return {"relations": await self._write(lambda g: g.create_relations(args["relations"]))}
        if tool == "add_observations":
            return {"results": await self._write(lambda g: g.add_observations(args["observations"]))}
        if tool == "delete_entities":
            await self._write(lambda g: g.delete_entities(args["entityNames"]))
            return {"success": True, "message": "Entities deleted successfully"}
        if tool == "delete_observations":
            await self._write(lambda g: g.delete_observations(args["deletions"]))
            return {"success": True, "message": "Observations deleted successfully"}
        if tool == "delete_relations":
            await self._write(lambda g: g.delete_relations(args["relations"]))
            return {"success": True, "message": "Relations deleted successfully"}
        if tool == "read_graph":
            return dict(await self._read(lambda g: g.read_graph()))
        if tool == "search_nodes":
            return dict(await self._read(lambda g: g.search_nodes(args["query"])))
        return dict(await self._read(lambda g: g.open_nodes(args["names"])))

    # -- reads --------------------------------------------------------------------------------------

    async def _read(self, op: Callable[[Graph], T]) -> T:
        async with self._busy:
            if self._stale():
                try:
                    await asyncio.to_thread(self._reload_for_read)
                except OSError as exc:
                    raise self._translate(exc) from exc
                self._flush_repairs()
            return op(self._graph)

    def _reload_for_read(self) -> None:
        """Re-read the file for a read. Renames are atomic, so no lock is needed unless the
        file needs repair, which is then done (re-read and written back) under the lock."""
        generation = self._lock.generation()
        data, ident = read_file(self.path)
        loaded = parse(data)
        if loaded.repairs:
            self._locked(None)
            return
        self.loads += 1
        self._graph = loaded.graph
        self._identity = ident
        self._generation = generation

    def _translate(self, exc: BaseException) -> Exception:
        """File-system errors become :class:`MemoryGraphError` naming the file (nothing was
        acknowledged); other errors pass through as they are."""
        if isinstance(exc, OSError):
            error = MemoryGraphError(f"memory file {self.path}: {exc.strerror or exc}")
            error.__cause__ = exc
            return error
        if isinstance(exc, Exception):
            return exc
        return MemoryGraphError(f"commit interrupted: {exc!r}")

    def _stale(self) -> bool:
        if self._identity is _UNLOADED:
            return True
        try:
            current: FileIdentity | None = identity(os.stat(self.path))
        except FileNotFoundError:
            current = None
        return current != self._identity or self._lock.generation() != self._generation

    # -- writes: grouped, locked, durable ---------------------------------------------------------

    async def _write(self, op: _Op) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop())
        # A caller cancelled while waiting leaves the write to finish; its outcome is then read
        # here so an error is not reported as never retrieved.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(future)

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            async with self._busy:
                try:
                    outcomes = await asyncio.to_thread(self._locked, [op for op, _ in batch])
                except BaseException as exc:
                    self._identity = _UNLOADED
                    error = self._translate(exc)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self._flush_repairs()
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            self._discard_old_versions()

    def _discard_old_versions(self) -> None:
        """Unlink replaced versions off the acknowledgement's path (in a worker thread)."""
        if not self._old_versions or (self._discarding is not None and not self._discarding.done()):
            return
        old, self._old_versions = self._old_versions, []
        self._discarding = asyncio.get_running_loop().run_in_executor(None, _discard_all, old)

    def _locked(self, ops: list[_Op] | None) -> list[tuple[bool, Any]]:
        """Under the file lock: reload if the file changed, apply ``ops``, save once. Runs in a
        worker thread; the event loop does not touch the graph meanwhile (``_busy`` is held)."""
        self._lock.acquire()
        try:
            self._refresh()
            if ops is None:
                return []
            outcomes: list[tuple[bool, Any]] = []
            for op in ops:
                try:
                    outcomes.append((True, op(self._graph)))
                except MemoryGraphError as exc:
                    outcomes.append((False, exc))
            if any(ok for ok, _ in outcomes):
                try:
                    self._identity, old = replace_durably(self.path, self._graph.encode_chunks())
                except BaseException:
                    self._identity = _UNLOADED
                    raise
                if old is not None:
                    self._old_versions.append(old)
                self._generation = self._lock.bump_generation()
                self.commits += 1
            return outcomes
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        """Re-read the file if it is not the version we hold; repair it on disk if it needs it."""
        if not self._stale():
            return
        data, ident = read_file(self.path)
        self.loads += 1
        loaded = parse(data)
        self._graph = loaded.graph
        self._identity = ident
        self._generation = self._lock.generation()
        for stray in stray_temps(self.path, older_than_s=STRAY_TEMP_AGE_S):
            stray.unlink(missing_ok=True)  # under the lock no writer of ours is mid-save
        if loaded.repairs:
            append_quarantine(self.path, loaded.quarantine)
            self._identity = write_durably(self.path, self._graph.encode())
            self._generation = self._lock.bump_generation()
            self._new_repairs = loaded.repairs

    _new_repairs: list[Repair] | None = None

    def _flush_repairs(self) -> None:
        repairs, self._new_repairs = self._new_repairs, None
        if not repairs:
            return
        self.repairs.extend(repairs)
        if self._report_repairs:
            report(self.path, repairs)
        if self._on_repair is not None:
            for repair in repairs:
                self._on_repair(repair)

    async def aclose(self) -> None:
        """Wait for pending writes to be durable, then let go of the lock file."""
        while self._committer is not None and not self._committer.done():
            await asyncio.shield(self._committer)
        if self._discarding is not None:
            await self._discarding
        _discard_all(self._old_versions)
        self._old_versions = []
        self._lock.close()

    async def __aenter__(self) -> KnowledgeGraph:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
