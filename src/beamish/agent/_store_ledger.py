"""The budget ledger in the journal's store (SQLite or PostgreSQL), shared by every process and node."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from beamish._exceptions import SpecError
from beamish.agent._ledger import LedgerTx, PauseRecord, Reservation, Spend, Window
from beamish.agent._pricing import nano_to_usd, usd_to_nano

T = TypeVar("T")


class StoreLedger:
    """The ledger in the journal's store (SQLite or PostgreSQL): shared by every process and node.

    Spend is the journal's ``ledger`` table (``kind = 'spend'``), which a journaled ``done`` step
    writes in its own transaction. Settling a journaled step therefore sets its reservation to the
    real cost, and the reservation counts until the journal's row exists (then it is dropped):
    the money is counted exactly once at every moment. A call that is not journaled gets its spend
    row written here. Pauses live in ``budget_pauses``. On PostgreSQL every ledger transaction
    first locks one row, so check-then-reserve is atomic across nodes; SQLite's ``BEGIN IMMEDIATE``
    already serialises writers.

    ``reservations="store"`` (the default) keeps reservations in ``budget_reservations``, seen by
    every process and node: caps hold exactly however many processes spend at once, for one
    durable write per model call. ``reservations="local"`` keeps them in this process's memory:
    no extra write, and caps hold exactly for the calls of this process; calls in flight in *other*
    processes are seen only once the journal records them (at most one call each past a cap).
    """

    charged_by_journal = True

    def __init__(self, store: Any, reservations: str = "store") -> None:
        if reservations not in ("store", "local"):
            raise SpecError(f"StoreLedger reservations={reservations!r}: expected 'store' or 'local'")
        self.store = store
        self._local: dict[str, Reservation] | None = {} if reservations == "local" else None
        self._local_lock = threading.Lock()

    async def run(self, fn: Callable[[LedgerTx], T]) -> T:
        local = self._local
        if local is None:

            def unit(tx: Any) -> T:
                if tx.dialect == "postgresql":
                    tx.execute("UPDATE budget_lock SET n = n + 1 WHERE id = 1")
                return fn(_StoreTx(tx, self.store))

            result: T = await self.store.run(unit)
            return result
        # Reservations in memory: most transactions only read the store, so try a read snapshot
        # first (no wait for the single writer, no commit) and write only if needed. Money leaves
        # the local reservations only after the store has committed what replaces it.
        released: list[str] = []

        def local_unit(tx: Any) -> T:
            released.clear()
            with self._local_lock:
                return fn(_LocalTx(tx, local, released))

        try:
            result = await self.store.read(lambda tx: local_unit(_ReadOnly(tx)))
        except _NeedsWrite:
            result = await self.store.run(local_unit)
        with self._local_lock:
            for reservation_id in released:
                local.pop(reservation_id, None)
        return result

    async def read_first(self, fn: Callable[[LedgerTx], T]) -> T:
        if self._local is not None:
            return await self.run(fn)  # already tried on a read snapshot first
        try:
            result: T = await self.store.read(lambda tx: fn(_StoreTx(_ReadOnly(tx), self.store)))
        except _NeedsWrite:
            return await self.run(fn)
        return result


class _NeedsWrite(Exception):
    """A ledger transaction tried on a read snapshot has to write: it is run again as a write."""


class _ReadOnly:
    """A read transaction that refuses writes (so the unit of work is retried as a write)."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self.dialect = tx.dialect

    def fetchone(self, sql: str, params: Any = ()) -> Any:
        return self._tx.fetchone(sql, params)

    def fetchall(self, sql: str, params: Any = ()) -> Any:
        return self._tx.fetchall(sql, params)

    def execute(self, sql: str, params: Any = ()) -> int:
        raise _NeedsWrite(sql)


#: The journal has written the spend row of reservation ``r``'s step. ``kind || ''`` keeps the
#: probe on ``ledger_run`` (a run's few rows): on ``(kind, at)`` SQLite, which keeps no statistics,
#: scanned every spend row of the ledger for each reservation (0.5 s a check at 1,000 in flight).
_JOURNALED = "SELECT 1 FROM ledger l WHERE l.kind || '' = 'spend' AND l.run_id = r.run_id AND l.seq = r.seq"


_SPENT = "SELECT COALESCE(SUM(amount_usd), 0) FROM ledger WHERE kind = 'spend'"


def _cond(window: Window, prefix: str) -> tuple[str, list[Any]]:
    where, params = _where(window, prefix)
    return ("1 = 1" + where), params


def _sums_sql(windows: Sequence[Window], prefix: str, column: str = "amount_usd") -> tuple[str, list[Any]]:
    """``SUM(CASE WHEN <window i> THEN column ELSE 0 END) AS s<i>`` for each window, and params."""
    parts: list[str] = []
    params: list[Any] = []
    for i, window in enumerate(windows):
        cond, p = _cond(window, prefix)
        parts.append(f"COALESCE(SUM(CASE WHEN {cond} THEN {column} ELSE 0 END), 0) AS s{i}")
        params.extend(p)
    return ", ".join(parts), params


def _any(windows: Sequence[Window], prefix: str, params: list[Any]) -> str:
    """``<window 1> OR <window 2> …``, appending its params to ``params``."""
    conds: list[str] = []
    for window in windows:
        cond, p = _cond(window, prefix)
        conds.append(cond)
        params.extend(p)
    return " OR ".join(conds)


def _where(window: Window, prefix: str = "") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("agent", window.agent, "="),
        ("run_id", window.run_id, "="),
        ("at", window.start, ">="),
        ("at", window.end, "<"),
    ):
        if value is not None:
            clauses.append(f"{prefix}{column} {op} ?")
            params.append(value)
    return "".join(f" AND {c}" for c in clauses), params


class _StoreTx:
    """Budget windows are calendar spans on the node's clock; a reservation's expiry is a lease,
    decided on the database's clock on PostgreSQL, so nodes whose clocks disagree neither drop
    another's reservation early (and overspend) nor keep it past its time."""

    def __init__(self, tx: Any, store: Any) -> None:
        self._tx = tx
        self._store = store if getattr(store, "db_time", False) else None
        self._db_now: float | None = None

    def _now(self, node_now: float) -> float:
        if self._store is None:
            return node_now
        if self._db_now is None:  # read once per transaction, only when an expiry is decided
            self._db_now = float(self._store.tx_now(self._tx))
        return self._db_now

    def spent_all(self, windows: Sequence[Window]) -> list[int]:
        """One statement (one snapshot), one sum per window: each sum is a range on an index
        (``ledger_run``, ``ledger_agent_at``, or ``(kind, at)`` for the company), so a check reads
        the rows of its windows, not the whole history of the ledger."""
        if not windows:
            return []
        parts: list[str] = []
        params: list[Any] = []
        for i, window in enumerate(windows):
            where, p = _where(window)
            # an agent's or a run's window is kept off the (kind, at) index, which holds every
            # agent's rows, so the planner takes ledger_run / ledger_agent_at (SQLite keeps no
            # statistics to tell it which is narrower)
            narrow = window.agent is not None or window.run_id is not None
            kind = "kind || '' = 'spend'" if narrow else "kind = 'spend'"
            parts.append(f"(SELECT COALESCE(SUM(amount_usd), 0) FROM ledger WHERE {kind}{where}) AS s{i}")
            params.extend(p)
        row = self._tx.fetchone("SELECT " + ", ".join(parts), params)
        return [usd_to_nano(float((row or {}).get(f"s{i}") or 0)) for i in range(len(windows))]

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return self._held_sums(windows, now, f"AND NOT EXISTS ({_JOURNALED}) ")

    def held_bound_all(self, windows: Sequence[Window], now: float) -> list[int]:
        # the unexpired rows without asking the journal which of them it has recorded: one pass
        # over the reservations instead of a probe of the ledger for each
        return self._held_sums(windows, now, "")

    def _held_sums(self, windows: Sequence[Window], now: float, journaled: str) -> list[int]:
        if not windows:
            return []
        sql, params = _sums_sql(windows, "r.", column="r.amount_nano")
        params.append(self._now(now))
        row = self._tx.fetchone(
            f"SELECT {sql} FROM budget_reservations r WHERE r.expires_at > ? "
            f"{journaled}AND ({_any(windows, 'r.', params)})",
            params,
        )
        return [int((row or {}).get(f"s{i}") or 0) for i in range(len(windows))]

    def get_pauses(self, subjects: Sequence[str]) -> dict[str, PauseRecord]:
        marks = ", ".join("?" for _ in subjects)
        rows = self._tx.fetchall(
            f"SELECT subject, body FROM budget_pauses WHERE subject IN ({marks})", list(subjects)
        )
        return {r["subject"]: PauseRecord.from_json(json.loads(r["body"])) for r in rows}

    def held(self, window: Window, now: float) -> int:
        where, params = _where(window, "r.")
        row = self._tx.fetchone(
            "SELECT COALESCE(SUM(r.amount_nano), 0) AS s FROM budget_reservations r "
            "WHERE r.expires_at > ? AND NOT EXISTS (" + _JOURNALED + ")" + where,
            [self._now(now), *params],
        )
        return int(row["s"]) if row else 0

    def spent(self, window: Window) -> int:
        where, params = _where(window)
        row = self._tx.fetchone(
            "SELECT COALESCE(SUM(amount_usd), 0) AS s FROM ledger WHERE kind = 'spend'" + where, params
        )
        return usd_to_nano(float(row["s"])) if row else 0

    def add_reservation(self, r: Reservation) -> None:
        if hash(r.id) % 16 == 0:  # now and then, sweep the rows that no longer count
            self._tx.execute(
                "DELETE FROM budget_reservations WHERE expires_at <= ? OR id IN (SELECT r.id FROM "
                "budget_reservations r WHERE r.seq IS NOT NULL AND EXISTS (" + _JOURNALED + "))",
                (self._now(r.at),),
            )
        expires = self._now(r.at) + (r.expires_at - r.at)
        self._tx.execute(
            "INSERT INTO budget_reservations (id, agent, run_id, amount_nano, at, expires_at, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.id, r.agent, r.run_id, r.amount, r.at, expires, r.seq),
        )

    def settle(self, reservation_id: str, spend: Spend) -> None:
        if spend.seq is not None:
            # A journaled step: the journal writes its spend row when it records the step. Until
            # then the reservation stands in for it, at the real cost; then it stops counting.
            if spend.amount <= 0:
                self.release(reservation_id)
                return
            changed = self._tx.execute(
                "UPDATE budget_reservations SET amount_nano = ?, seq = ? WHERE id = ?",
                (spend.amount, spend.seq, reservation_id),
            )
            if changed == 0:
                self._tx.execute(
                    "INSERT INTO budget_reservations (id, agent, run_id, amount_nano, at, expires_at, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (
                        spend.id,
                        spend.agent,
                        spend.run_id,
                        spend.amount,
                        spend.at,
                        self._now(spend.at) + 900,
                        spend.seq,
                    ),
                )
            return
        self.release(reservation_id)
        seen = self._tx.fetchone(
            "SELECT 1 AS x FROM ledger WHERE kind = 'spend' AND run_id = ? AND note = ?",
            (spend.run_id, spend.id),
        )
        if seen is None and spend.amount > 0:
            self._tx.execute(
                "INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, note) "
                "VALUES (?, ?, ?, ?, 'spend', ?, ?)",
                (spend.at, spend.agent, spend.run_id, spend.seq, nano_to_usd(spend.amount), spend.id),
            )

    def release(self, reservation_id: str) -> None:
        self._tx.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))

    def get_pause(self, subject: str) -> PauseRecord | None:
        row = self._tx.fetchone("SELECT body FROM budget_pauses WHERE subject = ?", (subject,))
        return None if row is None else PauseRecord.from_json(json.loads(row["body"]))

    def set_pause(self, record: PauseRecord) -> None:
        body = json.dumps(record.to_json(), sort_keys=True)
        self._tx.execute(
            "INSERT INTO budget_pauses (subject, body, at) VALUES (?, ?, ?) "
            "ON CONFLICT (subject) DO UPDATE SET body = excluded.body, at = excluded.at",
            (record.subject, body, record.at),
        )

    def clear_pause(self, subject: str) -> None:
        self._tx.execute("DELETE FROM budget_pauses WHERE subject = ?", (subject,))

    def run_pauses(self) -> list[PauseRecord]:
        rows = self._tx.fetchall("SELECT body FROM budget_pauses WHERE subject LIKE 'run:%'")
        return [PauseRecord.from_json(json.loads(r["body"])) for r in rows]


class _LocalTx(_StoreTx):
    """Spend and pauses in the store, reservations in this process's memory."""

    def __init__(self, tx: Any, reservations: dict[str, Reservation], released: list[str]) -> None:
        super().__init__(tx, None)  # local reservations live on this process's clock
        self._r = reservations
        self._released = released

    def _journaled(self, r: Reservation) -> bool:
        if r.seq is None:
            return False
        row = self._tx.fetchone(
            "SELECT 1 AS x FROM ledger WHERE kind = 'spend' AND run_id = ? AND seq = ?", (r.run_id, r.seq)
        )
        return row is not None

    def _live(self, now: float) -> list[Reservation]:
        """The reservations that still count: drops the expired and those the journal has recorded."""
        live: list[Reservation] = []
        for key, r in list(self._r.items()):
            if r.expires_at <= now or self._journaled(r):
                del self._r[key]
            else:
                live.append(r)
        return live

    def held(self, window: Window, now: float) -> int:
        return self.held_all([window], now)[0]

    def held_bound_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return self.held_all(windows, now)

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        live = self._live(now)  # once for every window
        return [sum(r.amount for r in live if w.holds(r.agent, r.run_id, r.at)) for w in windows]

    def add_reservation(self, r: Reservation) -> None:
        self._r[r.id] = r

    def release(self, reservation_id: str) -> None:
        self._released.append(reservation_id)  # dropped once the transaction has committed

    def settle(self, reservation_id: str, spend: Spend) -> None:
        if spend.seq is None or spend.amount <= 0:
            super().settle(reservation_id, spend)
            return
        held = self._r.get(reservation_id)
        if held is not None:
            self._r[reservation_id] = dataclasses.replace(held, amount=spend.amount, seq=spend.seq)
