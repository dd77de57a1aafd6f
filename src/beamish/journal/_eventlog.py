"""Events (every lifecycle fact, readable since an id and followable) and the spend ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from beamish._events import Event
from beamish._exceptions import CorruptStore, SpecError
from beamish._redact import needs_redaction, redact_leaves
from beamish.journal._base import StoreBase
from beamish.journal._payload import canonical, finite
from beamish.journal._records import LedgerEntry
from beamish.journal._sql import SyncTx

#: The NOTIFY channel (``beamish_events.<schema>``: channels are per database, not per schema) that
#: wakes ``follow()`` on PostgreSQL when an event is stored.
EVENTS_CHANNEL = "beamish_events"
#: A jump in event ids larger than this is history (pruned), not commits still in flight.
_MAX_LATE = 256


def _event(body: str) -> Event:
    try:
        return Event.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStore(f"a stored event cannot be read ({exc}): {body[:80]!r}") from exc


def insert_event(tx: SyncTx, event: Event) -> int:
    """Append ``event`` inside a transaction; returns its id (ids only grow)."""
    if not isinstance(event, Event):
        raise SpecError(f"expected an Event, got {type(event).__name__}")
    body = canonical(event.to_json(), f"event {event.kind!r} data")
    if needs_redaction(body):  # no secret is stored, whatever an event carries
        body = canonical(redact_leaves(event.to_json()), f"event {event.kind!r} data")
    row = tx.fetchone(
        "INSERT INTO events (at, kind, subject, body) VALUES (?, ?, ?, ?) RETURNING id",
        (event.at, event.kind, event.subject, body),
    )
    assert row is not None
    if tx.dialect == "postgresql":  # wakes followers on every node at commit (polling stays the fallback)
        tx.execute(f"SELECT pg_notify('{EVENTS_CHANNEL}.' || current_schema(), '')")
    return int(row["id"])


def insert_ledger(
    tx: SyncTx,
    *,
    at: float,
    agent: str,
    amount_usd: float,
    kind: str = "spend",
    run_id: str | None = None,
    seq: int | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    model: str | None = None,
    note: str | None = None,
) -> int:
    row = tx.fetchone(
        "INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, tokens_in, tokens_out, model, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (at, agent, run_id, seq, kind, amount_usd, tokens_in, tokens_out, model, note),
    )
    assert row is not None
    return int(row["id"])


class EventsMixin(StoreBase):
    """The events table and the ledger."""

    async def append_event(self, event: Event) -> int:
        """Store one event; returns its id."""
        return await self.run(lambda tx: insert_event(tx, event))

    async def events(
        self,
        since: int = 0,
        *,
        limit: int = 1000,
        kinds: Iterable[str] | None = None,
        subject: str | None = None,
    ) -> list[tuple[int, Event]]:
        """Events with an id greater than ``since``, oldest first, as ``(id, event)``."""
        sql = "SELECT id, body FROM events WHERE id > ?"
        params: list[Any] = [since]
        if kinds is not None:
            wanted = list(kinds)
            sql += f" AND kind IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        if subject is not None:
            sql += " AND subject = ?"
            params.append(subject)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        rows = await self.read(lambda tx: tx.fetchall(sql, params))
        return [(int(r["id"]), _event(r["body"])) for r in rows]

    async def follow(
        self,
        since: int = 0,
        *,
        poll_s: float = 0.5,
        kinds: Iterable[str] | None = None,
        late_s: float = 10.0,
    ) -> AsyncIterator[tuple[int, Event]]:
        """Every event after ``since``, then new ones as they are stored (polls the store's clock).

        On PostgreSQL a NOTIFY wakes the follower as soon as an event is committed on any node, and
        because concurrent writers may commit ids out of order (id 11 visible before 10), ids skipped
        over are re-checked for ``late_s`` seconds and yielded if they appear.
        """
        wanted = None if kinds is None else set(kinds)
        high = since
        late: dict[int, float] = {}  # ids skipped over → when first missed
        wake = asyncio.Event()
        listener = None
        if self.dialect == "postgresql":
            listener = asyncio.ensure_future(self._wake_on_notify(wake))
        inner = self._follow(high, since, wanted, late, late_s, poll_s, wake, listener)
        try:
            async for item in inner:
                yield item
        finally:
            await inner.aclose()
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _wake_on_notify(self, wake: asyncio.Event) -> None:
        async for _ in self.listen(f"{EVENTS_CHANNEL}.{self.schema}"):
            wake.set()

    async def _follow(
        self,
        high: int,
        since: int,
        wanted: set[str] | None,
        late: dict[int, float],
        late_s: float,
        poll_s: float,
        wake: asyncio.Event,
        listener: asyncio.Future[None] | None,
    ) -> AsyncGenerator[tuple[int, Event], None]:
        while True:
            wake.clear()  # before the query: a NOTIFY from here on wakes the next wait
            batch = await self.events(high)
            if late:
                found = await self._events_by_id(sorted(late))
                batch = sorted(found + batch, key=lambda pair: pair[0])
            now = self.clock.monotonic()
            for eid, event in batch:
                late.pop(eid, None)
                if eid > high:
                    if eid - high <= _MAX_LATE and (high > 0 or since > 0):
                        late.update(dict.fromkeys(range(high + 1, eid), now))
                    high = eid
                if wanted is None or event.kind in wanted:
                    yield eid, event
            for eid in [e for e, first in late.items() if now - first >= late_s]:
                del late[eid]
            if batch:
                await asyncio.sleep(0)
            elif listener is None or listener.done():
                await self.clock.sleep(poll_s)
            else:
                await self._sleep_or_wake(poll_s, wake)

    async def _sleep_or_wake(self, poll_s: float, wake: asyncio.Event) -> None:
        waits = {asyncio.ensure_future(self.clock.sleep(poll_s)), asyncio.ensure_future(wake.wait())}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _events_by_id(self, ids: list[int]) -> list[tuple[int, Event]]:
        marks = ",".join("?" * len(ids))
        sql = f"SELECT id, body FROM events WHERE id IN ({marks})"
        rows = await self.read(lambda tx: tx.fetchall(sql, ids))
        return [(int(r["id"]), _event(r["body"])) for r in rows]

    async def add_ledger(
        self,
        agent: str,
        amount_usd: float,
        *,
        kind: str = "spend",
        run_id: str | None = None,
        seq: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        model: str | None = None,
        note: str | None = None,
        at: float | None = None,
    ) -> int:
        """Record money moving for ``agent`` (``kind``: spend, reserve, release, … — caller's choice).

        Journaled ``done`` steps with a cost add their own ``spend`` entry; call this for anything else.
        """
        if kind != "release":
            finite(amount_usd, "amount_usd")
        when = self.clock.time() if at is None else at
        return await self.run(
            lambda tx: insert_ledger(
                tx,
                at=when,
                agent=agent,
                amount_usd=amount_usd,
                kind=kind,
                run_id=run_id,
                seq=seq,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                model=model,
                note=note,
            )
        )

    async def spend(
        self,
        agent: str | None = None,
        *,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kind: str = "spend",
    ) -> float:
        """Sum of ledger amounts of ``kind`` in ``[since, until)``, for one agent, one run or all."""
        sql, params = self._ledger_where(agent, run_id, since, until, kind)
        row = await self.read(
            lambda tx: tx.fetchone(f"SELECT SUM(amount_usd) AS total FROM ledger{sql}", params)
        )
        return float(row["total"] or 0.0) if row else 0.0

    async def ledger(
        self,
        agent: str | None = None,
        *,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[LedgerEntry]:
        """Ledger entries, oldest first."""
        sql, params = self._ledger_where(agent, run_id, since, until, kind)
        rows = await self.read(
            lambda tx: tx.fetchall(f"SELECT * FROM ledger{sql} ORDER BY id LIMIT ?", [*params, limit])
        )
        return [
            LedgerEntry(
                id=int(r["id"]),
                at=float(r["at"]),
                agent=str(r["agent"]),
                kind=str(r["kind"]),
                amount_usd=float(r["amount_usd"]),
                run_id=r["run_id"],
                seq=None if r["seq"] is None else int(r["seq"]),
                tokens_in=int(r["tokens_in"]),
                tokens_out=int(r["tokens_out"]),
                model=r["model"],
                note=r["note"],
            )
            for r in rows
        ]

    @staticmethod
    def _ledger_where(
        agent: str | None, run_id: str | None, since: float | None, until: float | None, kind: str | None
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("agent", "=", agent),
            ("run_id", "=", run_id),
            ("at", ">=", since),
            ("at", "<", until),
            ("kind", "=", kind),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        return (" WHERE " + " AND ".join(where) if where else ""), params
