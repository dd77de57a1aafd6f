"""The Store: one journal API over SQLite (default) and PostgreSQL, opened by URL.

``await open_store("sqlite:///journal.db")`` or ``await open_store("postgresql://…")`` applies
pending migrations (see :mod:`beamish.journal._migrations`) and returns a :class:`Store`. Layers
with their own tables use the portable SQL layer: ``async with store.transaction() as tx`` for a few
statements, or ``await store.run(fn)`` with a synchronous ``fn(tx)`` for a hot path (one thread hop);
SQL uses ``?`` placeholders and ``store.dialect`` tells the two apart where they must differ.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._events import Event
from beamish._exceptions import CorruptStore, SpecError, StoreError, StoreUnavailable
from beamish.journal import _migrations
from beamish.journal._eventlog import EventsMixin, insert_event
from beamish.journal._leases import LeasesMixin
from beamish.journal._outage import GuardedBackend, Outage, OutageGuard, OutagePolicy
from beamish.journal._payload import DEFAULT_THRESHOLD
from beamish.journal._postgres import PostgresBackend, check_channel
from beamish.journal._prune import PruneMixin
from beamish.journal._runs import RunsMixin
from beamish.journal._sql import AsyncTx, Params, Row, SyncTx
from beamish.journal._sqlite import SqliteBackend, inspect_file, sqlite_path
from beamish.journal._steps import StepsMixin

logger = logging.getLogger("beamish.journal")


class Store(RunsMixin, StepsMixin, EventsMixin, LeasesMixin, PruneMixin):
    """The durable journal: runs, steps, events, leases, ledger. Open with :func:`open_store`."""

    def __init__(
        self,
        backend: SqliteBackend | PostgresBackend,
        url: str,
        clock: Clock,
        payload_threshold: int,
        outage: OutagePolicy | None = None,
    ) -> None:
        where = backend.where if isinstance(backend, PostgresBackend) else url
        recover = backend.recover if isinstance(backend, PostgresBackend) else None
        self._guard = OutageGuard(
            where, clock, outage or OutagePolicy(), recover=recover, closed=lambda: backend.closed
        )
        self._guard.subscribe(self._on_outage_event)
        self._outage_events: list[Event] = []
        self._outage_tasks: set[asyncio.Future[None]] = set()
        self._backend = GuardedBackend(backend, self._guard)
        self._pg: PostgresBackend | None = backend if isinstance(backend, PostgresBackend) else None
        self._sqlite: SqliteBackend | None = backend if isinstance(backend, SqliteBackend) else None
        #: The URL as given (it may hold a password: show :attr:`where` instead).
        self.url = url
        #: The URL with any password masked, for messages and displays.
        self.where = where
        self.clock = clock
        self.db_time = backend.dialect == "postgresql" and not getattr(clock, "drives_store_time", False)
        self.payload_threshold = payload_threshold
        self.applied: list[str] = []
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}

    def __repr__(self) -> str:
        return f"<Store {self.dialect} {self.where}>"

    @property
    def outage(self) -> Outage:
        """The database's health as this Store sees it: ``ok``, ``retrying`` or ``store_unavailable``."""
        return self._guard.outage

    @property
    def outage_policy(self) -> OutagePolicy:
        return self._guard.policy

    def on_outage(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` live for each ``store.unavailable`` and ``store.recovered``."""
        self._guard.subscribe(listener)

    def _on_outage_event(self, event: Event) -> None:
        """Journal an outage's two events once the store is back (it could not take them before)."""
        self._outage_events.append(event)
        if event.kind != "store.recovered":
            return
        events, self._outage_events = self._outage_events, []

        def work(tx: SyncTx) -> None:
            for e in events:
                insert_event(tx, e)

        task = asyncio.ensure_future(self.run(work))
        self._outage_tasks.add(task)
        task.add_done_callback(self._outage_written)

    def _outage_written(self, task: asyncio.Future[None]) -> None:
        self._outage_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.warning("store %s: the outage's events were not journaled: %s", self.where, error)

    def transaction(self) -> AbstractAsyncContextManager[AsyncTx]:
        """A write transaction spanning awaits: ``execute``, ``fetchone``, ``fetchall`` with ``?``.

        Commits when the block ends, rolls back if it raises. While it is open it holds SQLite's
        single writer, so keep it short (or use :meth:`run`).
        """
        return self._backend.transaction()

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own transaction; returns the rows changed."""
        return await self.run(lambda tx: tx.execute(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """One query (read snapshot); the first row or None."""
        return await self.read(lambda tx: tx.fetchone(sql, params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """One query (read snapshot); every row."""
        return await self.read(lambda tx: tx.fetchall(sql, params))

    async def notify(self, channel: str, payload: str = "") -> None:
        """Wake listeners of ``channel``: PostgreSQL NOTIFY (every node); on SQLite, this Store's own."""
        check_channel(channel)
        if self._pg is not None:
            await self.run(lambda tx: tx.execute("SELECT pg_notify(?, ?)", (channel, payload)))
            return
        for queue in self._listeners.get(channel, ()):
            queue.put_nowait(payload)

    async def listen(self, channel: str) -> AsyncIterator[str]:
        """Payloads notified on ``channel`` from now on (an async iterator; break out to stop)."""
        check_channel(channel)
        if self._pg is not None:
            pg = self._pg
            while True:  # a restart of the server drops the LISTEN connection: wait, then listen again
                try:
                    async for payload in pg.listen(channel):
                        yield payload
                    return
                except StoreUnavailable:
                    if pg.closed:
                        raise
                await self._guard.call(lambda: pg.run_single(lambda tx: tx.execute("SELECT 1")))
                await self.clock.sleep(self._guard.policy.probe_every_s)  # no busy loop if LISTEN alone fails
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners[channel].discard(queue)

    async def close(self) -> None:
        """Release connections and worker threads (after journaling an outage that just ended)."""
        if self._outage_tasks:
            await asyncio.wait(list(self._outage_tasks), timeout=5.0)
        await self._backend.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def open_store(
    url: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    payload_threshold: int = DEFAULT_THRESHOLD,
    pool_size: int = 4,
    outage: OutagePolicy | None = None,
    wait: bool = False,
) -> Store:
    """Open (creating and migrating as needed) the store at ``url``.

    ``sqlite:///path.db`` (relative) or ``sqlite:////abs/path.db``; ``postgresql://…`` (any libpq
    URL, e.g. ``?options=-csearch_path%3Dmyschema``). A file that is not a beamish store raises
    :class:`~beamish.errors.CorruptStore`, one from a newer beamish
    :class:`~beamish.errors.StoreVersionError`; either way it is left untouched. ``outage`` says how
    work rides out the database's outages (:class:`OutagePolicy`). The store must be reachable to
    open, unless ``wait``: then an outage at opening (the server down or restarting) is waited out
    as work waits one out — what an agent restarted during an outage does, instead of crashing.
    """
    if not isinstance(url, str):
        raise SpecError(f"a store URL must be a string, got {type(url).__name__}")
    if payload_threshold < 64:
        raise SpecError(f"payload_threshold must be ≥ 64 bytes, got {payload_threshold}")
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise SpecError(f"unknown store URL {url!r}: use sqlite:///path.db or postgresql://…")

    async def attempt() -> Store:
        if url.startswith("sqlite:///"):
            return await _open_sqlite(url, clock, payload_threshold, outage)
        return await _open_postgres(url, clock, payload_threshold, pool_size, outage)

    if not wait:
        return await attempt()
    policy = outage or OutagePolicy()
    waited, pause = 0.0, policy.first_retry_s
    while True:
        try:
            return await attempt()
        except StoreUnavailable as exc:
            if policy.give_up_after_s is not None and waited >= policy.give_up_after_s:
                raise
            if waited == 0.0:
                logger.warning("store unavailable at opening; waiting for it: %s", exc)
        await asyncio.sleep(pause)  # the real time: the database returns on its own schedule
        waited += pause
        pause = min(pause * 2, policy.probe_every_s)


async def _open_sqlite(url: str, clock: Clock, threshold: int, outage: OutagePolicy | None) -> Store:
    path = sqlite_path(url)
    shipped = _migrations.available("sqlite")
    loop = asyncio.get_running_loop()
    recorded = await loop.run_in_executor(None, inspect_file, path)
    if recorded is not None:
        _migrations.check_versions(path, recorded, shipped)
    await loop.run_in_executor(None, SqliteBackend.create_file, path)
    backend = SqliteBackend(path)
    store = Store(backend, url, clock, threshold, outage)
    try:
        await backend.enable_wal()
        store.applied = await backend.run(lambda tx: _migrations.apply(tx, path, shipped, clock.time()))
    except BaseException:
        await backend.close()
        raise
    return store


_PG_FOREIGN_CHECK = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
    "AND table_name IN ('runs', 'steps', 'events', 'leases', 'ledger', 'beamish_meta')"
)


async def _open_postgres(
    url: str, clock: Clock, threshold: int, pool_size: int, outage: OutagePolicy | None
) -> Store:
    backend = PostgresBackend(url, pool_size=pool_size)
    try:
        await backend.open()
    except BaseException:
        await backend.close()
        raise
    store = Store(backend, url, clock, threshold, outage)
    shipped = _migrations.available("postgresql")

    def migrate(tx: Any) -> list[str]:
        # One node migrates at a time; the others wait here, then find nothing left to do.
        tx.execute("SELECT pg_advisory_xact_lock(7491338061)")
        schema = tx.fetchone("SELECT current_schema() AS s")
        if schema is None or schema["s"] is None:
            raise StoreError(f"{backend.where}: no schema to create tables in (check search_path)")
        store.schema = str(schema["s"])
        present = {str(r["table_name"]) for r in tx.fetchall(_PG_FOREIGN_CHECK)}
        if present and "beamish_meta" not in present:
            raise CorruptStore(
                f"{backend.where}: schema {schema['s']!r} has tables {sorted(present)} that are not a "
                "beamish journal; it was left untouched (use another schema)"
            )
        if "beamish_meta" in present:
            _migrations.check_versions(backend.where, _migrations.read_versions(tx), shipped)
        return _migrations.apply(tx, backend.where, shipped, clock.time())

    try:
        store.applied = await backend.run(migrate)
    except BaseException:
        await backend.close()
        raise
    return store
