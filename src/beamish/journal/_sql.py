"""The portable SQL layer: one placeholder style (``?``), rows as dicts, one transaction shape.

Journal code and the modules that add their own tables (scheduler, bus, agent state) write SQL once
with ``?`` placeholders; each backend translates them (``%s`` for psycopg) and translates driver
errors to :class:`~beamish.StoreError` at the boundary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Literal, Protocol

from beamish._exceptions import StoreError

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]
Params = Sequence[Any]


class SyncTx(Protocol):
    """A transaction on a worker thread: the fast path (one thread hop for a whole unit of work)."""

    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or None."""
        ...

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row."""
        ...

    def executescript(self, script: str) -> None:
        """Run several parameterless statements (a migration file) inside this transaction."""
        ...


#: Set while this task is inside ``store.transaction()``: another write from it would wait on itself.
IN_TRANSACTION: ContextVar[bool] = ContextVar("beamish_store_in_transaction", default=False)


def refuse_nested(where: str) -> None:
    """Fail loudly instead of deadlocking when a task writes outside the transaction it holds."""
    if IN_TRANSACTION.get():
        raise StoreError(
            f"{where}: a store write (or a second transaction) inside an open store.transaction() "
            "would wait for itself; use the transaction's tx instead"
        )


@lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s``, leaving quoted text alone (``%`` escaped)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def database_now(tx: SyncTx) -> float:
    """The database server's wall clock (``clock_timestamp()``), in epoch seconds, read in ``tx``.

    Lease expiries, heartbeats and due times are decided on this one clock, so the nodes of a
    cluster need not agree on the time (no NTP requirement): a node whose clock is minutes off
    neither steals a live lease nor keeps one that ran out, nor fires a tick early or late.
    """
    row = tx.fetchone("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now")
    assert row is not None
    return float(row["now"])


def for_share(dialect: Dialect) -> str:
    """Row-lock suffix that makes a read-then-write fence hold under PostgreSQL's READ COMMITTED."""
    return " FOR SHARE" if dialect == "postgresql" else ""


def for_update_skip_locked(dialect: Dialect) -> str:
    """Claim rows nobody else is claiming (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises."""
    return " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""


class AsyncTx:
    """A transaction spanning several awaits (``async with store.transaction() as tx``).

    Each statement hops to the thread that owns the connection; use ``store.run(fn)`` instead for a
    hot path, which does the whole unit of work in one hop.
    """

    def __init__(self, tx: SyncTx, call: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self._tx = tx
        self._call = call
        self.dialect: Dialect = tx.dialect

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        result: int = await self._call(lambda: self._tx.execute(sql, params))
        return result

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or None."""
        result: Row | None = await self._call(lambda: self._tx.fetchone(sql, params))
        return result

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row."""
        result: list[Row] = await self._call(lambda: self._tx.fetchall(sql, params))
        return result
