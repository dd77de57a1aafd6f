"""PostgreSQL backend: psycopg 3 with a connection pool (the ``postgres`` extra).

Units of work run on worker threads with pooled synchronous connections (one thread hop per unit,
statements prepared by psycopg after a few uses). The URL is handed to libpq unchanged, so
``?options=-csearch_path%3Dschema`` and every other libpq parameter are honoured by each pooled
connection. LISTEN/NOTIFY wakes the bus; a listener holds its own connection.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from beamish._exceptions import SpecError, StoreError
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
            raise StoreError(f"{self._where}: PostgreSQL error: {exc}") from exc

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
            raise StoreError(f"{self._where}: PostgreSQL error in migration: {exc}") from exc


class PostgresBackend:
    """A pool of psycopg connections behind an async interface."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool
        except ImportError as exc:
            raise StoreError(
                "a postgresql:// store needs psycopg and psycopg_pool: pip install 'beamish[postgres]'"
            ) from exc
        self.url = url
        self.where = redact_text(url)  # no password (user:pw@ or password=) in any message
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}, name="beamish"
        )
        self._exec = WorkerPool(pool_size, "beamish-pg")
        # A slot per pooled connection, taken before the hop: no worker thread ever blocks waiting for
        # a connection that an open multi-await transaction holds (which would need a worker to end).
        self._slots = asyncio.Semaphore(pool_size)
        self._closed = False

    def open_blocking(self, timeout: float = 10.0) -> None:
        import psycopg
        import psycopg_pool

        try:  # one direct attempt first: a refused or misspelt server fails now, with libpq's reason
            psycopg.connect(self.url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.Error as exc:
            self._pool.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self.where}: cannot connect to PostgreSQL: {reason}") from exc
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"{self.where}: cannot connect to PostgreSQL within {timeout}s") from exc

    async def open(self) -> None:
        await self._exec.call(self.open_blocking)

    def _in_tx(self, fn: Callable[[SyncTx], T]) -> T:
        import psycopg

        try:
            with self._pool.connection() as conn, conn.transaction():
                return fn(PgTx(conn, self.where))
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: PostgreSQL error: {exc}") from exc

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
            raise StoreError(f"{self.where}: PostgreSQL error: {exc}") from exc

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
            raise StoreError(f"{self.where}: PostgreSQL error: {exc}") from exc

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
                raise StoreError(f"{self.where}: PostgreSQL error: {exc}") from exc
            return conn

        def end(conn: psycopg.Connection[Any], sql: str) -> None:
            try:
                conn.execute(sql)
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: PostgreSQL error on {sql}: {exc}") from exc
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
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot open a LISTEN connection: {exc}") from exc
        try:
            await conn.execute(f'LISTEN "{channel}"')
            async for note in conn.notifies():
                yield note.payload
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: LISTEN {channel} failed: {exc}") from exc
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
