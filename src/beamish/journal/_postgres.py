"""PostgreSQL backend: psycopg 3 with a connection pool (the ``postgres`` extra).

Units of work run on worker threads with pooled synchronous connections (one thread hop per unit,
statements prepared by psycopg after a few uses). The URL is handed to libpq unchanged, so
``?options=-csearch_path%3Dschema`` and every other libpq parameter are honoured by each pooled
connection. LISTEN/NOTIFY wakes the bus; a listener holds its own connection.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from beamish._exceptions import SpecError, StoreError, StoreUnavailable
from beamish._redact import redact_text
from beamish.journal._sql import (
    IN_TRANSACTION,
    AsyncTx,
    Dialect,
    Params,
    Row,
    SyncTx,
    refuse_nested,
    to_pyformat,
)
from beamish.journal._worker import WorkerPool

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")
_CHANNEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$")
#: SQLSTATEs that mean the server cannot serve this connection now (class 08, connection exception,
#: is matched by prefix): shutting down (57P01 admin, 57P02 crash), starting up (57P03), full (53300).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
#: Seconds a checkout waits for the pool to make a connection. A slot per connection means a
#: checkout never waits for a busy one, only for a new one, so a long wait means the server is away;
#: the outage guard then probes the server itself instead of waiting out the pool's reconnect backoff.
_CHECKOUT_S = 1.0


def is_unavailable(exc: BaseException) -> bool:
    """True for a psycopg error that says the server cannot be reached now, not that the work is wrong.

    libpq's own failures (refused, cut, closed, the pool's timeout) carry no SQLSTATE; the server's
    carry class 08 or one of :data:`_UNAVAILABLE_STATES`. A deadlock, a cancelled query, a full disk
    or a constraint violation is an error of the work and is never retried as an outage.
    """
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in _UNAVAILABLE_STATES


def translate(exc: BaseException, where: str, what: str = "PostgreSQL error") -> StoreError:
    """The driver error as beamish's: :class:`StoreUnavailable` for an outage, else StoreError."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_unavailable(exc):
        return StoreUnavailable(f"{where}: PostgreSQL is unavailable: {reason}")
    return StoreError(f"{where}: {what}: {exc}")


def check_channel(channel: str) -> str:
    if not _CHANNEL.match(channel):
        raise SpecError(f"bad notification channel {channel!r}: letters, digits, _ . : - (max 63)")
    return channel


class PgTx:
    """A transaction on one pooled psycopg connection."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], where: str) -> None:
        self._conn = conn
        self._where = where

    def _run(self, sql: str, params: Params) -> psycopg.Cursor[Any]:
        import psycopg

        try:
            return self._conn.execute(to_pyformat(sql), tuple(params))
        except psycopg.Error as exc:
            raise translate(exc, self._where) from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._run(sql, params).rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        cur = self._run(sql, params)
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d.name for d in cur.description or ()], row, strict=True))

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cur = self._run(sql, params)
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def executescript(self, script: str) -> None:
        """Run a migration file; psycopg accepts several statements when there are no parameters."""
        import psycopg

        try:
            self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise translate(exc, self._where, "PostgreSQL error in migration") from exc


class PostgresBackend:
    """A pool of psycopg connections behind an async interface."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise StoreError(
                "a postgresql:// store needs psycopg and psycopg_pool: pip install 'beamish[postgres]'"
            ) from exc
        self.url = url
        self.where = redact_text(url)  # no password (user:pw@ or password=) in any message
        self._pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool[Any] = self._new_pool()
        self._recover_lock = asyncio.Lock()
        self._exec = WorkerPool(pool_size, "beamish-pg")
        # A slot per pooled connection, taken before the hop: no worker thread ever blocks waiting for
        # a connection that an open multi-await transaction holds (which would need a worker to end).
        self._slots = asyncio.Semaphore(pool_size)
        self._closed = False

    def _new_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """Pooled connections are checked on checkout (a server restart leaves every idle one dead)."""
        import psycopg_pool

        return psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs={"autocommit": True},
            name="beamish",
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=_CHECKOUT_S,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    async def recover(self) -> None:
        """Between two tries during an outage: if the server answers a direct connection now, put a
        fresh pool in place of the old one, whose reconnect attempts back off up to minutes apart.

        Raises :class:`StoreUnavailable` while the server is still away.
        """
        async with self._recover_lock:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._swap_pool)

    def _swap_pool(self) -> None:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc
        if self._closed:
            return
        fresh = self._new_pool()
        fresh.open(wait=False)
        old, self._pool = self._pool, fresh
        # a checkout still waiting on the old pool fails at once and is tried again on the fresh one;
        # its workers (perhaps inside a connection attempt) end on their own thread
        threading.Thread(
            target=old.close, kwargs={"timeout": 5.0}, name="beamish-pg-old-pool", daemon=True
        ).start()

    def open_blocking(self, timeout: float = 10.0) -> None:
        import psycopg
        import psycopg_pool

        try:  # one direct attempt first: a refused or misspelt server fails now, with libpq's reason
            psycopg.connect(self.url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.Error as exc:
            self._pool.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fault = StoreUnavailable if is_unavailable(exc) else StoreError
            raise fault(f"{self.where}: cannot connect to PostgreSQL: {reason}") from exc
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(f"{self.where}: cannot connect to PostgreSQL within {timeout}s") from exc

    async def open(self) -> None:
        await self._exec.call(self.open_blocking)

    def _in_tx(self, fn: Callable[[SyncTx], T]) -> T:
        import psycopg

        try:
            with self._pool.connection() as conn, conn.transaction():
                return fn(PgTx(conn, self.where))
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn`` in one transaction on a worker thread."""
        self._check_open()
        refuse_nested(self.where)
        async with self._slots:
            return await self._exec.call(self._in_tx, fn)

    def _single(self, fn: Callable[[SyncTx], T]) -> T:
        import psycopg

        try:
            with self._pool.connection() as conn:
                return fn(PgTx(conn, self.where))
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc

    async def run_single(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn``, which issues one statement (atomic by itself), without BEGIN/COMMIT round trips."""
        self._check_open()
        refuse_nested(self.where)
        async with self._slots:
            return await self._exec.call(self._single, fn)

    def _read(self, fn: Callable[[SyncTx], T]) -> T:
        import psycopg

        try:
            with self._pool.connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try:
                    return fn(PgTx(conn, self.where))
                finally:
                    conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc

    async def read(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn`` in a read-only snapshot (allowed inside an open ``transaction()``)."""
        self._check_open()
        async with self._slots:
            return await self._exec.call(self._read, fn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTx]:
        """A transaction spanning several awaits on one pooled connection."""
        import psycopg

        self._check_open()
        refuse_nested(self.where)

        def call(fn: Callable[[], Any]) -> Awaitable[Any]:
            return self._exec.call(fn)

        def begin() -> psycopg.Connection[Any]:
            conn: psycopg.Connection[Any] = self._pool.getconn()
            try:
                conn.execute("BEGIN")
            except psycopg.Error as exc:
                self._pool.putconn(conn)
                raise translate(exc, self.where) from exc
            return conn

        def end(conn: psycopg.Connection[Any], sql: str) -> None:
            try:
                conn.execute(sql)
            except psycopg.Error as exc:
                raise translate(exc, self.where, f"PostgreSQL error on {sql}") from exc
            finally:
                self._pool.putconn(conn)

        await self._slots.acquire()
        slot_held = True
        try:
            started = self._exec.call(begin)
            try:
                conn = await asyncio.shield(started)
            except asyncio.CancelledError:
                # The BEGIN still happens on its thread: roll it back, then free the connection and slot.
                started.add_done_callback(self._abandon)
                slot_held = False
                raise
            token = IN_TRANSACTION.set(True)
            try:
                yield AsyncTx(PgTx(conn, self.where), call)
            except BaseException:
                await asyncio.shield(self._exec.call(end, conn, "ROLLBACK"))
                raise
            finally:
                IN_TRANSACTION.reset(token)
            await self._exec.call(end, conn, "COMMIT")
        finally:
            if slot_held:
                self._slots.release()

    def _abandon(self, started: asyncio.Future[Any]) -> None:
        if started.cancelled() or started.exception() is not None:
            self._slots.release()
            return
        conn = started.result()

        def rollback() -> None:
            try:
                conn.execute("ROLLBACK")
            finally:
                self._pool.putconn(conn)

        self._exec.call(rollback).add_done_callback(lambda _: self._slots.release())

    async def listen(self, channel: str) -> AsyncIterator[str]:
        """Yield each payload NOTIFY'd on ``channel`` (own connection, closed when the loop ends)."""
        import psycopg

        check_channel(channel)
        self._check_open()
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=2)
        except psycopg.Error as exc:
            raise translate(exc, self.where, "cannot open a LISTEN connection") from exc
        try:
            await conn.execute(f'LISTEN "{channel}"')
            async for note in conn.notifies():
                yield note.payload
        except psycopg.Error as exc:
            raise translate(exc, self.where, f"LISTEN {channel} failed") from exc
        finally:
            await conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.where}: the store is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._exec.shutdown()
        self._pool.close()
