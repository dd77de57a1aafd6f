"""SQLite backend: the embedded default. WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``, busy timeout.

Every write runs on one dedicated writer thread with its own connection (SQLite allows one writer
anyway), reads on a small pool of reader threads, one connection per thread, so the event loop never
blocks on disk. An existing file is inspected read-only first: a file that is not a beamish store, or
is damaged, is refused before anything could write to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from beamish._exceptions import CorruptStore, StoreError, StoreUnavailable
from beamish.journal._sql import IN_TRANSACTION, AsyncTx, Dialect, Params, Row, SyncTx, refuse_nested
from beamish.journal._worker import WorkerPool

T = TypeVar("T")

#: ``PRAGMA application_id`` of a beamish store ("bmsh"): tells our files from foreign SQLite files.
APPLICATION_ID = 0x626D7368
_BUSY_TIMEOUT_MS = 10_000
#: The most writes one group commit covers.
_GROUP_MAX = 256


def _settle_all(
    batch: list[tuple[Any, asyncio.Future[Any]]], outcomes: list[tuple[Any, BaseException | None]]
) -> None:
    for (_, fut), (result, error) in zip(batch, outcomes, strict=True):
        if fut.done():
            continue
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)


#: Primary result codes of a file that cannot be written *now*: another process holds the lock past
#: the busy timeout (BUSY, LOCKED), or the disk refuses (IOERR, FULL, CANTOPEN, READONLY). Each of
#: them leaves the journal as it was (the transaction is rolled back), so the work may be tried again.
_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)
#: SQLITE_IOERR_CORRUPTFS: the file system says the file is damaged; waiting will not mend it.
_IOERR_CORRUPTFS = sqlite3.SQLITE_IOERR | (33 << 8)


def is_unavailable(exc: BaseException) -> bool:
    """True for an SQLite error that says the file cannot be written now, not that the work is wrong."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or not isinstance(code, int):
        return False
    return (code & 0xFF) in _TRANSIENT and code != _IOERR_CORRUPTFS


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "file is encrypted" in text
    ):
        return CorruptStore(f"{path}: the SQLite file is damaged ({text}); it was left untouched")
    if is_unavailable(exc):
        name = getattr(exc, "sqlite_errorname", "")
        return StoreUnavailable(f"{path}: the SQLite file cannot be written now ({name}: {text})")
    return StoreError(f"{path}: SQLite error: {text}")


class SqliteTx:
    """A transaction on one SQLite connection (used only on the thread that owns it)."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._path = path

    def execute(self, sql: str, params: Params = ()) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise _translate(exc, self._path) from exc

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            cur = self._conn.execute(sql, params)
            row = cur.fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path) from exc
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cur = self._conn.execute(sql, params)
            rows = cur.fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path) from exc
        names = [d[0] for d in cur.description] if cur.description else []
        return [dict(zip(names, row, strict=True)) for row in rows]

    def executescript(self, script: str) -> None:
        """Run a migration file statement by statement, inside the current transaction."""
        buf = ""
        for line in script.splitlines(keepends=True):
            buf += line
            if sqlite3.complete_statement(buf):
                self.execute(buf)
                buf = ""
        if buf.strip() and not all(
            part.strip().startswith("--") or not part.strip() for part in buf.splitlines()
        ):
            raise StoreError(f"incomplete SQL statement at the end of a migration: {buf.strip()[:80]!r}")


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs/x.db`` or ``sqlite:///`` + ``/abs`` → absolute."""
    rest = url[len("sqlite:///") :]
    if not rest or rest.startswith(":memory:"):
        raise StoreError(f"{url!r}: a journal needs a file path (sqlite:///path/to/journal.db)")
    return rest.split("?", 1)[0]


def inspect_file(path: str) -> dict[str, int] | None:
    """Read-only look at an existing file: None for a new store, else its component versions.

    Raises CorruptStore for a file that is not SQLite, is damaged, or belongs to another program.
    Nothing is written: the file is opened with ``mode=ro``.

    The file is read only through SQLite, never with a plain ``open``: closing any descriptor of the
    file drops every POSIX lock this process holds on it, including the shared lock of a store that
    is still open here. Without that lock another process closing its last connection deletes the
    WAL under this one, and the two then commit to different WAL files, never seeing each other.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    try:
        # Without a WAL to read, open it immutable: not even -wal/-shm side files get created.
        live = os.path.exists(path + "-wal") or os.path.exists(path + "-shm")
        flags = "mode=ro" if live else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"file:{quote(path)}?{flags}", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise _translate(exc, path) from exc
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and app_id == 0:
            return None
        if app_id != APPLICATION_ID or "beamish_meta" not in tables:
            raise CorruptStore(
                f"{path}: a SQLite database of another program (application_id {app_id:#x}, "
                f"tables {sorted(tables)[:5]}), not a beamish journal; it was left untouched"
            )
        return {str(c): int(v) for c, v in conn.execute("SELECT component, version FROM beamish_meta")}
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise CorruptStore(f"{path}: not a SQLite database (bad header); it was left untouched") from exc
        raise _translate(exc, path) from exc
    except sqlite3.Error as exc:
        raise _translate(exc, path) from exc
    finally:
        conn.close()


class SqliteBackend:
    """Thread-confined SQLite connections behind an async interface."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str, readers: int = 2) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._writer = WorkerPool(1, "beamish-sqlite-writer", initializer=self._connect)
        self._readers = WorkerPool(readers, "beamish-sqlite-reader", initializer=self._connect_reader)
        self._write_lock = asyncio.Lock()
        #: Writes waiting for the next group commit, and the task that commits them.
        self._pending: list[tuple[Callable[[SyncTx], Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Future[None] | None = None
        self._closed = False

    @staticmethod
    def create_file(path: str) -> None:
        """Create the database file 0600 (journals hold prompts and outputs)."""
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreError(f"{path}: directory {directory} does not exist")
        if not os.path.exists(path):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                return
            os.close(fd)

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)

    def _connect_reader(self) -> None:
        """Reader connections refuse writes (a write there would be rolled back with the snapshot)."""
        self._connect()
        self._conn().execute("PRAGMA query_only = ON")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._local.conn
        return conn

    def _enable_wal(self) -> None:
        try:
            mode = self._conn().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL journal mode (got {mode!r})")

    async def enable_wal(self) -> None:
        """Switch the file to WAL (persistent; outside any transaction, on the writer thread)."""
        await self._writer.call(self._enable_wal)

    def _in_tx(self, fn: Callable[[SyncTx], T]) -> T:
        conn = self._conn()
        tx = SqliteTx(conn, self.path)
        tx.execute("BEGIN IMMEDIATE")
        try:
            result = fn(tx)
            tx.execute("COMMIT")
        except BaseException:
            # also after a failed COMMIT: on a full disk or an I/O error SQLite may keep the
            # transaction open, and the next BEGIN would fail on it
            self._rollback()
            raise
        return result

    def _read(self, fn: Callable[[SyncTx], T]) -> T:
        conn = self._conn()
        tx = SqliteTx(conn, self.path)
        tx.execute("BEGIN")
        try:
            return fn(tx)
        finally:
            if conn.in_transaction:
                conn.rollback()

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn`` in a write transaction on the writer thread.

        Group commit: writes that arrive while one commits share the next commit, each in its own
        savepoint (one that fails is rolled back alone), and each caller hears back only after the
        COMMIT — the fsync — that covers its write. Many runs at once then pay one fsync per group.
        """
        self._check_open()
        refuse_nested(self.path)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_pending())
        return await fut

    async def _commit_pending(self) -> None:
        async with self._write_lock:
            while self._pending:
                batch = [job for job in self._pending[:_GROUP_MAX] if not job[1].cancelled()]
                del self._pending[:_GROUP_MAX]
                if self._closed:
                    _settle_all(batch, [(None, StoreError(f"{self.path}: the store is closed"))] * len(batch))
                    continue
                outcomes: list[tuple[Any, BaseException | None]] = []
                try:
                    if len(batch) == 1:
                        fn = batch[0][0]
                        try:
                            outcomes = [(await self._writer.call(self._in_tx, fn), None)]
                        except Exception as exc:
                            outcomes = [(None, exc)]
                    elif batch:
                        outcomes = await self._writer.call(self._in_group, [fn for fn, _ in batch])
                except BaseException as exc:  # the commit failed (or we are cancelled): every write with it
                    outcomes = [(None, exc)] * len(batch)
                    if not isinstance(exc, Exception):
                        _settle_all(batch, outcomes)
                        raise
                _settle_all(batch, outcomes)

    def _in_group(self, fns: list[Callable[[SyncTx], Any]]) -> list[tuple[Any, BaseException | None]]:
        conn = self._conn()
        tx = SqliteTx(conn, self.path)
        tx.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            for i, fn in enumerate(fns):
                tx.execute(f"SAVEPOINT g{i}")
                try:
                    outcomes.append((fn(tx), None))
                except Exception as exc:
                    tx.execute(f"ROLLBACK TO g{i}")
                    outcomes.append((None, exc))
                tx.execute(f"RELEASE g{i}")
            tx.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return outcomes

    run_single = run

    async def read(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn`` in a read transaction (a consistent snapshot) on a reader thread."""
        self._check_open()
        return await self._readers.call(self._read, fn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTx]:
        """A write transaction spanning several awaits; holds the writer until it ends."""
        self._check_open()
        refuse_nested(self.path)

        def call(fn: Callable[[], Any]) -> Awaitable[Any]:
            return self._writer.call(fn)

        def begin() -> SqliteTx:
            tx = SqliteTx(self._conn(), self.path)
            tx.execute("BEGIN IMMEDIATE")
            return tx

        async with self._write_lock:
            try:
                tx = await self._writer.call(begin)
            except asyncio.CancelledError:
                self._writer.call(self._rollback)  # runs after the BEGIN (one FIFO thread)
                raise
            token = IN_TRANSACTION.set(True)
            try:
                yield AsyncTx(tx, call)
            except BaseException:
                # FIFO executor: the rollback runs before any later job, even if we are cancelled.
                await asyncio.shield(self._writer.call(self._rollback))
                raise
            finally:
                IN_TRANSACTION.reset(token)
            await self._writer.call(self._commit, tx)

    def _commit(self, tx: SqliteTx) -> None:
        try:
            tx.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the error that brought us here says more
                conn.rollback()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown()
        self._readers.shutdown()
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
