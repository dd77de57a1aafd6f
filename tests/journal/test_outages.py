"""Store outages: retried on the store's clock, waited out without a crash, written once.

The guard is driven on a fake clock (its waits are the clock's); the idempotency and pool tests run
on the real SQLite file and the real PostgreSQL. The outages of a real server and a real full disk,
under a running node, are in ``tests/reliability/test_store_outages.py``.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from beamish._events import Event
from beamish.errors import SpecError, StoreError, StoreUnavailable
from beamish.journal import Store, open_store
from beamish.journal._outage import OK, RETRYING, UNAVAILABLE, OutageGuard, OutagePolicy
from beamish.journal._postgres import is_unavailable as pg_unavailable
from beamish.journal._sql import SyncTx
from beamish.journal._sqlite import is_unavailable as sqlite_unavailable
from beamish.testing import FakeClock, settle, wait_for

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


class Database:
    """A stand-in for a unit of work against a database that can be taken away and given back."""

    def __init__(self) -> None:
        self.down = False
        self.tries = 0

    async def write(self) -> str:
        self.tries += 1
        if self.down:
            raise StoreUnavailable("db: PostgreSQL is unavailable: connection refused")
        return "written"


async def _run_until(clock: FakeClock, task: asyncio.Future[Any], until: float) -> None:
    """Move the fake clock from sleeper to sleeper until ``until`` (or the task ends)."""
    await settle()
    while not task.done():
        nxt = clock.next_deadline()
        if nxt is None or nxt > until:
            clock.advance(max(0.0, until - clock.monotonic()))
            await settle()
            return
        await clock.jump(nxt - clock.monotonic())


async def test_work_waits_through_an_outage_and_resumes_within_a_probe_interval() -> None:
    clock = FakeClock()
    events: list[Event] = []
    guard = OutageGuard("db", clock, OutagePolicy(retry_for_s=10.0, probe_every_s=0.5))
    guard.subscribe(events.append)
    db = Database()
    db.down = True
    task = asyncio.ensure_future(guard.call(db.write))

    await _run_until(clock, task, 5.0)
    assert not task.done()
    assert guard.outage.state == RETRYING
    assert [e.kind for e in events] == ["store.unavailable"]

    await _run_until(clock, task, 20.0)  # past retry_for_s: the work waits, it does not fail
    assert not task.done()
    assert guard.outage.state == UNAVAILABLE
    assert guard.outage.since == pytest.approx(clock.time() - 20.0)

    db.down = False
    returned_at = clock.monotonic()
    await _run_until(clock, task, 25.0)
    assert task.result() == "written"
    assert clock.monotonic() - returned_at <= 0.5, "resumed within one probe interval"
    assert guard.outage.state == OK
    assert [e.kind for e in events] == ["store.unavailable", "store.recovered"]
    assert events[1].data["outage_s"] == pytest.approx(20.0, abs=0.5)
    assert guard.outage.recovered == 1


async def test_tries_back_off_up_to_the_probe_interval_and_no_further() -> None:
    clock = FakeClock()
    guard = OutageGuard("db", clock, OutagePolicy(probe_every_s=0.5, first_retry_s=0.05))
    db = Database()
    db.down = True
    task = asyncio.ensure_future(guard.call(db.write))
    await _run_until(clock, task, 60.0)
    # 0.05, 0.1, 0.2, 0.4, then every 0.5 s: about two tries a second, not a busy loop nor a stall
    assert 110 <= db.tries <= 125
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_store_past_its_give_up_raises_store_unavailable() -> None:
    clock = FakeClock()
    guard = OutageGuard("db", clock, OutagePolicy(give_up_after_s=30.0))
    db = Database()
    db.down = True
    task = asyncio.ensure_future(guard.call(db.write))
    await _run_until(clock, task, 40.0)
    with pytest.raises(StoreUnavailable, match="giving up"):
        task.result()


async def test_an_error_of_the_work_is_not_retried() -> None:
    clock = FakeClock()
    guard = OutageGuard("db", clock, OutagePolicy())
    tries = 0

    async def bad() -> None:
        nonlocal tries
        tries += 1
        raise StoreError("db: PostgreSQL error: duplicate key value violates unique constraint")

    with pytest.raises(StoreError, match="duplicate key"):
        await guard.call(bad)
    assert tries == 1
    assert guard.outage.state == OK


async def test_a_closed_store_is_not_waited_for() -> None:
    guard = OutageGuard("db", FakeClock(), OutagePolicy(), closed=lambda: True)
    db = Database()
    db.down = True
    with pytest.raises(StoreUnavailable):
        await guard.call(db.write)
    assert db.tries == 1


@pytest.mark.parametrize(
    "field, value",
    [("retry_for_s", 0), ("probe_every_s", -1), ("first_retry_s", float("nan")), ("give_up_after_s", 0)],
)
def test_a_bad_outage_policy_names_its_field(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=f"OutagePolicy.{field}"):
        OutagePolicy(**{field: value})


def test_postgresql_errors_are_told_apart_from_outages() -> None:
    import psycopg
    import psycopg_pool
    from psycopg import errors

    outages = [
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CrashShutdown("terminating connection because of crash of another server process"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.ConnectionFailure("connection failure"),
        errors.TooManyConnections("sorry, too many clients already"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 1.00 sec"),
    ]
    work_errors = [
        errors.QueryCanceled("canceling statement due to statement timeout"),
        errors.DeadlockDetected("deadlock detected"),
        errors.DiskFull("could not extend file"),
        errors.UniqueViolation("duplicate key value violates unique constraint"),
        errors.UndefinedTable('relation "runs" does not exist'),
        ValueError("not a driver error"),
    ]
    assert [pg_unavailable(e) for e in outages] == [True] * len(outages)
    assert [pg_unavailable(e) for e in work_errors] == [False] * len(work_errors)


def test_sqlite_errors_are_told_apart_from_outages(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as busy:
        other.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as constraint:
        holder.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError) as syntax:
        holder.execute("SELEC 1")
    holder.execute("ROLLBACK")
    holder.close()
    other.close()
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    corrupt_fs = sqlite3.OperationalError("disk I/O error")
    corrupt_fs.sqlite_errorcode = sqlite3.SQLITE_IOERR | (33 << 8)  # type: ignore[attr-defined]

    assert sqlite_unavailable(busy.value)
    assert sqlite_unavailable(full)
    assert not sqlite_unavailable(constraint.value)
    assert not sqlite_unavailable(syntax.value)
    assert not sqlite_unavailable(corrupt_fs)


@pytest.fixture
async def live_store(store_url: str) -> AsyncIterator[Store]:
    """On the system clock: a retried write waits its (short) first backoff for real."""
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


class LostAcknowledgement:
    """The backend's work commits, then the answer never arrives (the connection died at COMMIT)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.lost = 0
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    async def _commit_then_lose(self, call: Callable[..., Any], fn: Callable[[SyncTx], T]) -> T:
        result: T = await call(fn)
        if self.armed:
            self.armed = False
            self.lost += 1
            raise StoreUnavailable("db: PostgreSQL is unavailable: server closed the connection unexpectedly")
        return result

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        return await self._commit_then_lose(self._raw.run, fn)

    async def run_single(self, fn: Callable[[SyncTx], T]) -> T:
        return await self._commit_then_lose(self._raw.run_single, fn)


@pytest.mark.parametrize("phases", [("done",), ("intent", "done")], ids=["one-phase", "intent-then-done"])
async def test_a_step_whose_commit_was_not_acknowledged_is_written_and_billed_once(
    live_store: Store, phases: tuple[str, ...]
) -> None:
    store = live_store
    await store.create_run("ceo", None, run_id="r")
    epoch = await store.claim_run("r", "n")
    flaky = LostAcknowledgement(store._backend.raw)  # type: ignore[attr-defined]
    store._backend.raw = flaky  # type: ignore[attr-defined]
    for phase in phases:
        flaky.armed = True
        await store.record_step(
            "r", 0, epoch, kind="llm", phase=phase, request={"q": 1},
            response=None if phase == "intent" else "a", cost_usd=0.25,
        )  # fmt: skip
    assert flaky.lost == len(phases), "each write was committed, then retried"
    steps = await store.steps("r")
    assert [(s.seq, s.phase, s.response) for s in steps] == [(0, "done", "a")]
    assert (await store.get_run("r")).spend_usd == pytest.approx(0.25), "billed once"
    assert await store.spend("ceo") == pytest.approx(0.25)


async def test_the_outage_is_journaled_once_the_store_is_back(live_store: Store) -> None:
    store = live_store
    await store.create_run("ceo", None, run_id="r")
    flaky = LostAcknowledgement(store._backend.raw)  # type: ignore[attr-defined]
    store._backend.raw = flaky  # type: ignore[attr-defined]
    seen: list[str] = []
    store.on_outage(lambda e: seen.append(e.kind))
    flaky.armed = True
    await store.update_run("r", status="running")
    assert seen == ["store.unavailable", "store.recovered"]
    assert store.outage.state == OK and store.outage.recovered == 1
    await store.close()  # waits for the outage's events to be written
    reopened = await open_store(store.url)
    try:
        kinds = [e.kind for _, e in await reopened.events(0)]
    finally:
        await reopened.close()
    assert kinds.count("store.unavailable") == 1
    assert kinds.count("store.recovered") == 1


async def test_a_pooled_connection_the_server_dropped_is_replaced_unseen(pg_url: str) -> None:
    import psycopg

    name = f"beamish-outage-{uuid.uuid4().hex[:8]}"  # end this store's connections, no one else's
    store = await open_store(f"{pg_url}&application_name={name}", pool_size=2)
    try:
        await store.create_run("ceo", None, run_id="r")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1, "the store's idle connection was terminated"
        await store.update_run("r", status="running")  # a checked-out stale connection would fail
        assert (await store.get_run("r")).status == "running"
        assert store.outage.recovered == 0, "a dead idle connection is no outage: it is replaced"
    finally:
        await store.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def test_a_store_opened_during_an_outage_waits_for_it(pg_url: str, caplog: Any) -> None:
    """An agent (re)started while PostgreSQL is down waits for it instead of crashing: the server is
    reached through a port where nothing listens at first, then a forwarder to the real one."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await open_store(url)  # without wait: one clear error, at once
    policy = OutagePolicy(probe_every_s=0.05)
    opening = asyncio.create_task(open_store(url, wait=True, outage=policy))
    await wait_for(lambda: "waiting for it" in caplog.text, 20, "the store's outage noticed at opening")
    assert not opening.done()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 5432)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        store = await asyncio.wait_for(opening, 30)
        try:
            assert await store.fetchone("SELECT 1 AS one") == {"one": 1}
        finally:
            await store.close()
    finally:
        server.close()
