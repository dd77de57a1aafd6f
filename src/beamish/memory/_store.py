"""``KnowledgeGraph``: the nine operations on one memory file, with no lost writes.

Every read-modify-write runs under the file lock, on a graph that is re-read only when the file's
identity (device, inode, size, mtime) changed underneath. Concurrent writes are grouped: whatever
arrives while one commit is on disk goes into the next, so N parallel calls cost a few fsyncs, not
N. A write is acknowledged only once durable. A commit that only adds entities or relations is
appended to the file (one write and one ``fdatasync``, whatever the graph's size); any other change
rewrites the whole file atomically (temp file, fsync, rename, fsync of the directory), and so does
compaction, which puts appended entities back in the reference's layout when the out-of-place tail
grows past a bound, when the store has been idle a moment, and on close. File work runs in a
worker thread so a slow disk never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from beamish._exceptions import MemoryGraphError
from beamish._tasks import cancel_and_wait
from beamish.memory._append import FileMoved, append_durably, append_payload, tail_size
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

#: Compaction waits until the out-of-place tail is at least this big *and* a quarter of the file,
#: so the rewrites it costs stay a bounded share of the bytes appended, whatever the graph's size.
COMPACT_TAIL_BYTES = 64 * 1024

#: After this long without a write the file is compacted (if it has an out-of-place tail).
COMPACT_IDLE_S = 1.0

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

    ``compact_idle_s`` is how long without writes before an appended tail is compacted (None:
    only past the size bound and on close); ``compact_tail_bytes`` the smallest tail compacted
    while writing (0: never leave the canonical layout, i.e. rewrite instead of appending out of
    place).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        on_repair: Callable[[Repair], None] | None = None,
        report_repairs: bool = True,
        compact_idle_s: float | None = COMPACT_IDLE_S,
        compact_tail_bytes: int = COMPACT_TAIL_BYTES,
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
        self._compact_idle_s = compact_idle_s
        self._compact_tail_bytes = compact_tail_bytes
        # Bytes at the end of the file (as we hold it) that are out of the canonical layout.
        self._tail = 0
        # Whether the version we hold is known durable (we wrote it); a version someone else wrote
        # gets its directory synced with our first append to it.
        self._durable = False
        # Whether ``_identity`` describes exactly the bytes the graph was read from (a read racing
        # an append can see more bytes than its stat said); needed to read only an appended tail.
        self._exact = False
        self._activity = 0
        self._compactor: asyncio.Task[None] | None = None
        self._compactor_sleeping = False
        self._closing = False
        self.repairs: list[Repair] = []
        #: How many durable commits this instance made (a group commit counts once).
        self.commits = 0
        #: Of those, how many were appends (the rest rewrote the file), and how many compactions ran.
        self.appends = 0
        self.compactions = 0
        #: How many times only the bytes another writer appended were read, instead of the file.
        self.tail_loads = 0
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
        if self._tail_span() is not None:
            self._locked(None)  # only appended to: read just that, under the lock
            return
        generation = self._lock.generation()
        data, ident = read_file(self.path)
        loaded = parse(data)
        if loaded.repairs:
            self._locked(None)
            return
        self.loads += 1
        self._adopt(loaded.graph, data, ident, generation)

    def _adopt(self, graph: Graph, data: bytes, ident: FileIdentity | None, generation: int | None) -> None:
        """Hold ``graph``, just read from ``data`` (a version someone else may have written)."""
        self._graph = graph
        self._identity = ident
        self._generation = generation
        self._tail = tail_size(data, b"".join(graph.encode_chunks()))
        self._durable = False
        self._exact = ident is not None and ident[2] == len(data)

    def _tail_span(self) -> tuple[int, FileIdentity, int] | None:
        """When the file is the version we hold plus lines other writers of ours appended since
        (per the lock file's record): the offset they start at, the file's identity and the
        commit counter after them; else None."""
        mine: FileIdentity | None = self._identity
        if mine is _UNLOADED or mine is None or not self._exact or self._generation is None:
            return None
        record = self._lock.read_record()
        if record is None:
            return None
        generation, chain, theirs = record
        if chain > self._generation or theirs[:2] != mine[:2] or theirs[2] <= mine[2]:
            return None
        try:
            if identity(os.stat(self.path)) != theirs:
                return None  # changed after that commit too, by a writer outside the lock
        except FileNotFoundError:
            return None
        return mine[2], theirs, generation

    def _read_tail(self) -> bool:
        """Take in what other writers appended, reading only those bytes; False (nothing changed)
        when that is not possible or loading them would need a repair: then read everything."""
        span = self._tail_span()
        if span is None:
            return False
        start, theirs, generation = span
        try:
            with open(self.path, "rb") as f:
                f.seek(start)
                data = f.read(theirs[2] - start)
        except FileNotFoundError:
            return False
        if len(data) != theirs[2] - start or (start and not data.startswith(b"\n")):
            return False
        loaded = parse(data)
        had_relations = self._graph.relation_count > 0
        if loaded.repairs or not self._graph.absorb(loaded.graph):
            return False
        added = loaded.graph
        if self._tail or (added.entity_count and (had_relations or added.relation_count)) or b"\n\n" in data:
            self._tail += len(data)
        self._identity = theirs
        self._generation = generation
        self.tail_loads += 1
        return True

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
        self._activity += 1
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
        self._schedule_compaction()

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
            self._graph.begin_changes()
            for op in ops:
                try:
                    outcomes.append((True, op(self._graph)))
                except MemoryGraphError as exc:
                    outcomes.append((False, exc))
            if any(ok for ok, _ in outcomes):
                self._save()
            return outcomes
        finally:
            self._lock.release()

    def _save(self) -> None:
        """Make the operations just applied durable: append what they added if that is all they
        did and the tail stays within its bound, else rewrite the file. Under the lock."""
        added = self._graph.added()
        ident: FileIdentity | None = self._identity
        if added is not None and ident is not None:
            entity_lines, relation_lines = added
            if not entity_lines and not relation_lines and self._durable:
                return  # nothing changed, and what is on disk is durable: as if rewritten
            payload, padding = append_payload(ident[2], [*entity_lines, *relation_lines])
            out_of_place = (
                self._tail > 0
                or padding > 0
                or (bool(entity_lines) and self._graph.relation_count > len(relation_lines))
            )
            tail = self._tail + len(payload) if out_of_place else 0
            bound = self._compact_tail_bytes and max(self._compact_tail_bytes, (ident[2] + len(payload)) // 4)
            if (entity_lines or relation_lines) and tail <= bound:
                record = self._lock.read_record()
                try:
                    self._identity = append_durably(self.path, payload, ident, sync_dir=not self._durable)
                except FileMoved:
                    pass  # replaced outside the lock: the rewrite below puts our graph in place
                except BaseException:
                    self._identity = _UNLOADED
                    raise
                else:
                    self._tail = tail
                    self._durable = self._exact = True
                    # the chain of appends goes on if we appended to what the last commit left
                    chain = record[1] if record is not None and record[2] == ident else None
                    self._committed(chain)
                    self.commits += 1
                    self.appends += 1
                    return
        self._rewrite()
        self.commits += 1

    def _rewrite(self) -> None:
        """Replace the file with the graph in the canonical layout, atomically and durably."""
        try:
            self._identity, old = replace_durably(self.path, self._graph.encode_chunks())
        except BaseException:
            self._identity = _UNLOADED
            raise
        if old is not None:
            self._old_versions.append(old)
        self._tail = 0
        self._durable = self._exact = True
        self._committed(None)

    def _committed(self, chain: int | None) -> None:
        """Count a commit in the lock file and record what it left (``chain``: where the chain of
        appends it continues began; None when it starts one)."""
        self._generation = generation = self._lock.bump_generation()
        if self._identity is not None:
            self._lock.write_record(generation, generation if chain is None else chain, self._identity)

    def _refresh(self) -> None:
        """Re-read the file if it is not the version we hold (only what other writers appended,
        when that is all that changed); repair it on disk if it needs it."""
        if not self._stale() or self._read_tail():
            return
        data, ident = read_file(self.path)
        self.loads += 1
        loaded = parse(data)
        self._adopt(loaded.graph, data, ident, self._lock.generation())
        for stray in stray_temps(self.path, older_than_s=STRAY_TEMP_AGE_S):
            stray.unlink(missing_ok=True)  # under the lock no writer of ours is mid-save
        if loaded.repairs:
            append_quarantine(self.path, loaded.quarantine)
            self._identity = write_durably(self.path, self._graph.encode())
            self._tail = 0
            self._durable = self._exact = True
            self._committed(None)
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

    # -- compaction ---------------------------------------------------------------------------------

    def _schedule_compaction(self) -> None:
        if (
            self._tail
            and self._compact_idle_s is not None
            and not self._closing
            and (self._compactor is None or self._compactor.done())
        ):
            self._compactor = asyncio.create_task(self._compact_when_idle(self._compact_idle_s))

    async def _compact_when_idle(self, idle_s: float) -> None:
        self._compactor_sleeping = True
        try:
            while True:
                seen = self._activity
                await asyncio.sleep(idle_s)
                if self._activity == seen and not self._pending:
                    break
        finally:
            self._compactor_sleeping = False
        # Not needed for correctness (an appended file loads the same): a failure leaves the tail
        # for the next chance.
        with contextlib.suppress(MemoryGraphError):
            await self.compact()

    async def compact(self) -> bool:
        """Rewrite the file in the reference's layout now if it has an out-of-place tail (entities
        appended after relations); returns whether it rewrote. Safe alongside other writers."""
        async with self._busy:
            try:
                done = await asyncio.to_thread(self._locked_compact)
            except OSError as exc:
                raise self._translate(exc) from exc
            self._flush_repairs()
        self._discard_old_versions()
        return done

    def _locked_compact(self) -> bool:
        self._lock.acquire()
        try:
            self._refresh()
            if not self._tail:
                return False
            self._rewrite()
            self.compactions += 1
            return True
        finally:
            self._lock.release()

    async def aclose(self) -> None:
        """Wait for pending writes to be durable, compact the file if it has an appended tail,
        then let go of the lock file."""
        self._closing = True
        while self._committer is not None and not self._committer.done():
            await asyncio.shield(self._committer)
        if self._compactor is not None:  # a sleeping compactor is cancelled, a running one finishes
            await cancel_and_wait(self._compactor, grace_s=0.0 if self._compactor_sleeping else math.inf)
        if self._tail and self._identity is not _UNLOADED:
            with contextlib.suppress(MemoryGraphError):  # the file is whole either way
                await self.compact()
        if self._discarding is not None:
            await self._discarding
        _discard_all(self._old_versions)
        self._old_versions = []
        self._lock.close()

    async def __aenter__(self) -> KnowledgeGraph:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
