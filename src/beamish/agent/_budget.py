"""Budgets that pause instead of crash: caps, windows, reservations and the keeper that enforces them.

Before each model call the keeper *reserves* the call's worst case against every cap that applies
(the run, the agent's day / month / total, the company's), atomically, inside one ledger
transaction; after the call it *settles* the reservation to the real cost. So twenty concurrent runs
of one agent can never spend past a cap together: the twenty-first reservation that would not fit
is refused before any money is spent. A refused reservation pauses (the run for a per-run cap, the
agent or the whole company otherwise) with an :class:`~beamish.OverBudget` reason and an event; it
never crashes, so a supervisor sees no restart loop. A pause ends by ``resume``, by a raised cap, or
when its window rolls over in the budget's time zone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import SpecError
from beamish._exits import OverBudget
from beamish.agent._pricing import ModelRates, Price, PriceBook, nano_to_usd, usd_to_nano

COMPANY = "*"  #: the ledger's name for the company-wide scope
LIMITS = ("per_run_usd", "per_day_usd", "per_month_usd", "total_usd")

Emit = Callable[[Event], None]
T = TypeVar("T")

_ID = ["", -1]  # a random prefix per process (re-drawn after a fork) and the pid it was drawn in
_ID_COUNTER = itertools.count()


def _next_id() -> str:
    """A reservation id unique across processes and nodes, cheaper than a uuid4 per call."""
    pid = os.getpid()
    if _ID[1] != pid:
        _ID[:] = [uuid.uuid4().hex[:16], pid]
    return f"{_ID[0]}-{next(_ID_COUNTER)}"


# -- the ledger: where spend, reservations and pauses live ---------------------------------------


@dataclass(frozen=True)
class Window:
    """One cap's slice of the ledger: ``agent`` (None: every agent), ``run_id`` (None: every run),
    ``[start, end)`` epoch seconds (None: unbounded), and the ``cap`` in nano-USD."""

    agent: str | None
    run_id: str | None
    start: float | None
    end: float | None
    cap: int
    limit: str
    warn_at: float

    def holds(self, agent: str, run_id: str, at: float) -> bool:
        return (
            (self.agent is None or self.agent == agent)
            and (self.run_id is None or self.run_id == run_id)
            and (self.start is None or at >= self.start)
            and (self.end is None or at < self.end)
        )


@dataclass(frozen=True)
class Reservation:
    """Money held for a model call in flight; it stops counting at ``expires_at`` (a crashed holder
    cannot block a budget forever)."""

    id: str
    agent: str
    run_id: str
    amount: int
    at: float
    expires_at: float
    seq: int | None = None  #: the journal step the call will be recorded as, when it is journaled


@dataclass(frozen=True)
class Spend:
    """Money spent: one settled model call. ``id`` is unique (``run_id:seq`` for a journaled step),
    so settling twice charges once."""

    id: str
    agent: str
    run_id: str
    amount: int
    at: float
    seq: int | None = None


@dataclass(frozen=True)
class PauseRecord:
    """Why ``subject`` (an agent, ``"*"`` for the company, or ``"run:<id>"``) is paused.

    ``cause`` is ``budget`` or ``loop``; ``reason`` the exit reason as JSON. A budget pause keeps the
    ``limit``, the ``cap`` it hit and when its window ends, so it can lift itself.
    """

    subject: str
    cause: str
    reason: dict[str, Any]
    limit: str = ""
    cap: int | None = None
    window_end: float | None = None
    agent: str | None = None
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "subject": self.subject,
            "cause": self.cause,
            "reason": self.reason,
            "limit": self.limit,
            "cap": self.cap,
            "window_end": self.window_end,
            "agent": self.agent,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PauseRecord:
        if data.get("v") != 1:
            raise ValueError(f"unsupported pause record version {data.get('v')!r}")
        fields = {k: v for k, v in data.items() if k != "v"}
        return cls(**fields)


class LedgerTx(Protocol):
    """What the keeper does inside one atomic ledger transaction (synchronous: the store runs the
    whole unit of work on its worker thread, in one hop)."""

    def held(self, window: Window, now: float) -> int:
        """Live (unexpired) reservations in ``window``, nano-USD."""
        ...

    def spent(self, window: Window) -> int:
        """Settled spend in ``window``, nano-USD."""
        ...

    def spent_all(self, windows: Sequence[Window]) -> list[int]:
        """:meth:`spent` of each window, in one go."""
        ...

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        """:meth:`held` of each window, in one go."""
        ...

    def get_pauses(self, subjects: Sequence[str]) -> dict[str, PauseRecord]:
        """The pauses of those ``subjects`` that have one."""
        ...

    def add_reservation(self, reservation: Reservation) -> None: ...
    def settle(self, reservation_id: str, spend: Spend) -> None: ...
    def release(self, reservation_id: str) -> None: ...
    def get_pause(self, subject: str) -> PauseRecord | None: ...
    def set_pause(self, record: PauseRecord) -> None: ...
    def clear_pause(self, subject: str) -> None: ...

    def run_pauses(self) -> list[PauseRecord]:
        """Every run-level pause (subjects ``run:<id>``)."""
        ...


class Ledger(Protocol):
    """Spend, reservations and pauses, changed only inside :meth:`run`: one serialised transaction.

    ``charged_by_journal``: spend rows are written by the journal when it records a step, so a
    journaled call's reservation needs no settling write.
    """

    charged_by_journal: bool

    async def run(self, fn: Callable[[LedgerTx], T]) -> T:
        """Run ``fn(tx)`` atomically: every other transaction sees all of it or none."""
        ...


class MemoryLedger:
    """The ledger in this process's memory: for tests, the benchmark, and nodes without a store.

    Transactions are serialised by one lock; window sums are cached and kept current on each
    settle, so a check costs a dictionary lookup however long the history.
    """

    charged_by_journal = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spends: list[Spend] = []
        self._spend_ids: set[str] = set()
        self._reservations: dict[str, Reservation] = {}
        self._pauses: dict[str, PauseRecord] = {}
        self._sums: dict[tuple[str | None, str | None, float | None, float | None], int] = {}
        self._tx = _MemoryTx(self)

    async def run(self, fn: Callable[[LedgerTx], T]) -> T:
        with self._lock:
            return fn(self._tx)


class _MemoryTx:
    def __init__(self, ledger: MemoryLedger) -> None:
        self._l = ledger

    def spent_all(self, windows: Sequence[Window]) -> list[int]:
        return [self.spent(w) for w in windows]

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return [self.held(w, now) for w in windows]

    def get_pauses(self, subjects: Sequence[str]) -> dict[str, PauseRecord]:
        pauses = self._l._pauses
        return {s: pauses[s] for s in subjects if s in pauses}

    def held(self, window: Window, now: float) -> int:
        return sum(
            r.amount
            for r in self._l._reservations.values()
            if r.expires_at > now and window.holds(r.agent, r.run_id, r.at)
        )

    def spent(self, window: Window) -> int:
        key = (window.agent, window.run_id, window.start, window.end)
        total = self._l._sums.get(key)
        if total is None:
            total = sum(s.amount for s in self._l._spends if window.holds(s.agent, s.run_id, s.at))
            if len(self._l._sums) > 64:
                self._l._sums.clear()
            self._l._sums[key] = total
        return total

    def add_reservation(self, reservation: Reservation) -> None:
        self._l._reservations[reservation.id] = reservation

    def settle(self, reservation_id: str, spend: Spend) -> None:
        self._l._reservations.pop(reservation_id, None)
        if spend.id in self._l._spend_ids:
            return
        self._l._spend_ids.add(spend.id)
        self._l._spends.append(spend)
        sums = self._l._sums
        at = spend.at
        for key in sums:
            agent, run_id, start, end = key
            if (
                (agent is None or agent == spend.agent)
                and (run_id is None or run_id == spend.run_id)
                and (start is None or at >= start)
                and (end is None or at < end)
            ):
                sums[key] += spend.amount

    def release(self, reservation_id: str) -> None:
        self._l._reservations.pop(reservation_id, None)

    def get_pause(self, subject: str) -> PauseRecord | None:
        return self._l._pauses.get(subject)

    def set_pause(self, record: PauseRecord) -> None:
        self._l._pauses[record.subject] = record

    def clear_pause(self, subject: str) -> None:
        self._l._pauses.pop(subject, None)

    def run_pauses(self) -> list[PauseRecord]:
        return [r for s, r in self._l._pauses.items() if s.startswith("run:")]


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
                return fn(_StoreTx(tx))

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


#: The journal has written the spend row of reservation ``r``'s step.
_JOURNALED = "SELECT 1 FROM ledger l WHERE l.kind = 'spend' AND l.run_id = r.run_id AND l.seq = r.seq"


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
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def spent_all(self, windows: Sequence[Window]) -> list[int]:
        if not windows:
            return []
        sql, params = _sums_sql(windows, "")
        row = self._tx.fetchone(
            f"SELECT {sql} FROM ledger WHERE kind = 'spend' AND ({_any(windows, '', params)})", params
        )
        return [usd_to_nano(float((row or {}).get(f"s{i}") or 0)) for i in range(len(windows))]

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        if not windows:
            return []
        sql, params = _sums_sql(windows, "r.", column="r.amount_nano")
        params.append(now)
        row = self._tx.fetchone(
            f"SELECT {sql} FROM budget_reservations r WHERE r.expires_at > ? "
            f"AND NOT EXISTS ({_JOURNALED}) AND ({_any(windows, 'r.', params)})",
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
            [now, *params],
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
                (r.at,),
            )
        self._tx.execute(
            "INSERT INTO budget_reservations (id, agent, run_id, amount_nano, at, expires_at, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.id, r.agent, r.run_id, r.amount, r.at, r.expires_at, r.seq),
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
                    (spend.id, spend.agent, spend.run_id, spend.amount, spend.at, spend.at + 900, spend.seq),
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
        super().__init__(tx)
        self._r = reservations
        self._released = released

    def _journaled(self, r: Reservation) -> bool:
        if r.seq is None:
            return False
        row = self._tx.fetchone(
            "SELECT 1 AS x FROM ledger WHERE kind = 'spend' AND run_id = ? AND seq = ?", (r.run_id, r.seq)
        )
        return row is not None

    def held(self, window: Window, now: float) -> int:
        total = 0
        for key, r in list(self._r.items()):
            if r.expires_at <= now or self._journaled(r):
                del self._r[key]
            elif window.holds(r.agent, r.run_id, r.at):
                total += r.amount
        return total

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return [self.held(w, now) for w in windows]

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


def _check_cap(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"Budget {name} must be an amount in USD or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"Budget {name} must be > 0 (None for no cap), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Spending caps in USD; ``None`` means no cap. ``per_day_usd`` and ``per_month_usd`` windows start
    at midnight in ``tz``; an event warns once a window passes ``warn_at`` of its cap.

    ``prices`` gives a :class:`~beamish.Price` per model name or glob (``"scripted:*"``), for models
    the offline catalogue does not know or to override it.
    """

    per_run_usd: float | None = None
    per_day_usd: float | None = None
    per_month_usd: float | None = None
    total_usd: float | None = None
    tz: str = "UTC"
    warn_at: float = 0.8
    prices: Mapping[str, Price] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in LIMITS:
            object.__setattr__(self, name, _check_cap(name, getattr(self, name)))
        if not isinstance(self.prices, Mapping):
            raise SpecError(f"Budget prices must map model names to beamish.Price, got {self.prices!r}")
        prices = {}
        for model, price in self.prices.items():
            if isinstance(price, Mapping):
                try:
                    price = Price(**price)
                except TypeError as exc:
                    raise SpecError(f"Budget prices[{model!r}]: {exc}") from exc
            prices[model] = price
        PriceBook(prices)  # validates names and values, naming the bad one
        object.__setattr__(self, "prices", prices)
        object.__setattr__(
            self, "_caps", {n: usd_to_nano(v) for n in LIMITS if (v := getattr(self, n)) is not None}
        )
        if not isinstance(self.tz, str):
            raise SpecError(f"Budget tz must be an IANA zone name such as 'Europe/Paris', got {self.tz!r}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SpecError(f"Budget tz {self.tz!r} is not a known IANA time zone") from exc
        warn = self.warn_at
        if isinstance(warn, bool) or not isinstance(warn, int | float) or not 0 < warn <= 1:
            raise SpecError(f"Budget warn_at must be a fraction in (0, 1], got {warn!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "budget") -> Budget:
        """Build from config, naming any unknown key."""
        known = {*LIMITS, "tz", "warn_at", "prices"}
        unknown = sorted(set(data) - known - {"v"})
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": 1, **{name: getattr(self, name) for name in LIMITS}}
        data.update(tz=self.tz, warn_at=self.warn_at)
        data["prices"] = {model: price.to_json() for model, price in self.prices.items()}
        return data

    def caps(self) -> dict[str, int]:
        """The caps that are set, in nano-dollars."""
        caps: dict[str, int] = self.__dict__["_caps"]
        return caps


def window_bounds(limit: str, tz: str, at: float) -> tuple[float | None, float | None]:
    """The ``[start, end)`` epoch seconds of the ``limit``'s window holding ``at`` (None: unbounded).

    Days and months begin at local midnight in ``tz``, so a 23- or 25-hour DST day is one window.
    """
    if limit not in ("per_day_usd", "per_month_usd"):
        return None, None
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(at, zone)
    if limit == "per_day_usd":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        nxt = start.date() + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=zone)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class Refusal:
    """Why a reservation did not fit: which cap, of which scope, and the money involved (nano-USD)."""

    scope: str  # "run", "agent" or "company"
    subject: str
    limit: str
    cap: int
    spent: int
    needed: int
    window_end: float | None

    def reason(self) -> OverBudget:
        return OverBudget(
            limit=f"{self.scope}.{self.limit}", spent=nano_to_usd(self.spent), cap=nano_to_usd(self.cap)
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "limit": self.limit,
            "cap_usd": nano_to_usd(self.cap),
            "spent_usd": nano_to_usd(self.spent),
            "needed_usd": nano_to_usd(self.needed),
            "window_end": self.window_end,
        }


class BudgetExceeded(Exception):
    """A reservation was refused; the keeper has already paused and emitted the event."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(f"{refusal.scope} {refusal.subject!r} is over its {refusal.limit} budget")


class Paused(Exception):
    """The agent (or the company) is paused: no model call may start."""

    def __init__(self, record: PauseRecord) -> None:
        self.record = record
        super().__init__(f"{record.subject!r} is paused: {record.reason.get('kind')} ({record.limit})")


@dataclass
class BudgetKeeper:
    """Enforces the agents' and the company's budgets over one ledger, on an injected clock.

    ``emit`` receives every decision as an :class:`~beamish._events.Event` (``budget.warning``,
    ``budget.exceeded``, ``agent.paused``, ``agent.resumed``, ``run.paused``).
    """

    ledger: Ledger
    clock: Clock
    budgets: dict[str, Budget] = field(default_factory=dict)
    company: Budget | None = None
    emit: Emit = field(default=lambda event: None)
    reservation_ttl_s: float = 900.0
    #: how often a call blocked only by others' reservations re-checks (reservations held by other
    #: processes settle without waking this one)
    poll_s: float = 0.05
    _warned: set[tuple[str, str, float | None]] = field(default_factory=set)
    _settled: asyncio.Event = field(default_factory=asyncio.Event)
    #: windows per (agent, run) with the span of time they hold for: computing day and month
    #: bounds in a time zone costs more than everything else in a check
    _window_cache: dict[tuple[str, str], tuple[float, float, list[tuple[str, str, Window]]]] = field(
        default_factory=dict
    )

    def set_budget(self, agent: str, budget: Budget | None) -> None:
        """Change an agent's caps (a raised cap lifts its budget pause at the next check)."""
        if budget is None:
            self.budgets.pop(agent, None)
        else:
            self.budgets[agent] = budget
        self._window_cache.clear()

    def set_company(self, budget: Budget | None) -> None:
        """Change the company-wide caps."""
        self.company = budget
        self._window_cache.clear()

    # -- the windows that apply to one call ------------------------------------------------------

    def _windows(self, agent: str, run_id: str, now: float) -> list[tuple[str, str, Window]]:
        cached = self._window_cache.get((agent, run_id))
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2]
        windows = self._compute_windows(agent, run_id, now)
        starts = [w.start for _, _, w in windows if w.start is not None]
        ends = [w.end for _, _, w in windows if w.end is not None]
        if len(self._window_cache) > 1024:
            self._window_cache.clear()
        self._window_cache[(agent, run_id)] = (
            max(starts, default=-math.inf),
            min(ends, default=math.inf),
            windows,
        )
        return windows

    def _compute_windows(self, agent: str, run_id: str, now: float) -> list[tuple[str, str, Window]]:
        out: list[tuple[str, str, Window]] = []
        for scope, subject, budget in (
            ("agent", agent, self.budgets.get(agent)),
            ("company", COMPANY, self.company),
        ):
            if budget is None:
                continue
            for limit, cap in budget.caps().items():
                start, end = window_bounds(limit, budget.tz, now)
                window = Window(
                    agent=None if scope == "company" else agent,
                    run_id=run_id if limit == "per_run_usd" else None,
                    start=start,
                    end=end,
                    cap=cap,
                    limit=limit,
                    warn_at=budget.warn_at,
                )
                out.append(("run" if limit == "per_run_usd" else scope, subject, window))
        return out

    # -- pause state ----------------------------------------------------------------------------

    def _first_pause(
        self, tx: LedgerTx, subjects: Sequence[str], now: float, out: list[Event]
    ) -> PauseRecord | None:
        """The first of ``subjects``' pauses that still holds (one read for all of them)."""
        found = tx.get_pauses(subjects)
        for subject in subjects:
            record = self._live_pause(tx, subject, now, out, found.get(subject))
            if record is not None:
                return record
        return None

    def _live_pause(
        self, tx: LedgerTx, subject: str, now: float, out: list[Event], record: PauseRecord | None
    ) -> PauseRecord | None:
        """The subject's pause if it still holds; lifts one whose window rolled over or cap rose."""
        if record is None or record.cause != "budget":
            return record
        rolled = record.window_end is not None and now >= record.window_end
        budget = self.company if subject == COMPANY else self.budgets.get(record.agent or subject)
        cap_now = None if budget is None else budget.caps().get(record.limit)
        raised = cap_now is None or (record.cap is not None and cap_now > record.cap)
        if not (rolled or raised):
            return record
        tx.clear_pause(subject)
        why = "window rolled over" if rolled else "cap raised"
        kind = "run.resumed" if subject.startswith("run:") else "agent.resumed"
        out.append(Event(kind, subject, {"cause": "budget", "why": why, "limit": record.limit}, at=now))
        return None

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            self.emit(event)

    async def paused(self, agent: str, run_id: str | None = None) -> PauseRecord | None:
        """The pause that keeps ``agent`` (or its ``run_id``) from calling its model, if any.

        Lifts budget pauses whose window rolled over or whose cap was raised, as it reads them.
        """
        now = self.clock.time()
        events: list[Event] = []
        subjects = (COMPANY, agent, *((f"run:{run_id}",) if run_id else ()))

        def check(tx: LedgerTx) -> PauseRecord | None:
            return self._first_pause(tx, subjects, now, events)

        found = await self.ledger.run(check)
        self._emit_all(events)
        return found

    async def resume(self, subject: str) -> bool:
        """Lift a pause (an agent, ``"*"`` for the company, or ``"run:<id>"``); True if one was lifted."""

        def lift(tx: LedgerTx) -> PauseRecord | None:
            record = tx.get_pause(subject)
            if record is not None:
                tx.clear_pause(subject)
            return record

        record = await self.ledger.run(lift)
        if record is None:
            return False
        kind = "run.resumed" if subject.startswith("run:") else "agent.resumed"
        self.emit(Event(kind, subject, {"cause": record.cause, "why": "resumed"}, at=self.clock.time()))
        self._settled.set()
        return True

    async def resume_agent(self, agent: str) -> int:
        """Lift the agent's pause and the pauses of its runs; returns how many were lifted."""

        def lift(tx: LedgerTx) -> list[PauseRecord]:
            found = [r for r in tx.run_pauses() if r.agent == agent]
            own = tx.get_pause(agent)
            if own is not None:
                found.append(own)
            for record in found:
                tx.clear_pause(record.subject)
            return found

        lifted = await self.ledger.run(lift)
        now = self.clock.time()
        for record in lifted:
            kind = "run.resumed" if record.subject.startswith("run:") else "agent.resumed"
            self.emit(Event(kind, record.subject, {"cause": record.cause, "why": "resumed"}, at=now))
        if lifted:
            self._settled.set()
        return len(lifted)

    async def pause(self, record: PauseRecord) -> None:
        """Record a pause of any cause (the loop detector pauses runs through here too)."""
        await self.ledger.run(lambda tx: tx.set_pause(record))

    # -- reserve and settle ---------------------------------------------------------------------

    async def reserve(self, agent: str, run_id: str, amount: int, seq: int | None = None) -> Reservation:
        """Hold ``amount`` nano-USD against every cap of ``agent`` and the company, or refuse.

        When only other calls' reservations are in the way, waits for them to settle (bounded by
        their expiry): they may well cost less than their worst case. When the money already
        *spent* leaves no room, pauses and raises :class:`BudgetExceeded` (after emitting
        ``budget.exceeded``). Raises :class:`Paused` when a pause holds.

        ``seq`` names the journal step the call will be recorded as: with a store ledger, the
        reservation then stops counting by itself once the journal's spend row for that step exists,
        so settling a journaled call costs no second write.
        """
        if amount <= 0:
            await self._check_pauses(agent, run_id)
            return Reservation("", agent, run_id, 0, 0.0, 0.0, seq)  # a free call holds nothing
        while True:
            events: list[Event] = []
            now = self.clock.time()
            attempt = functools.partial(
                self._try_reserve, agent=agent, run_id=run_id, amount=amount, seq=seq, now=now, events=events
            )
            outcome = await self.ledger.run(attempt)
            self._emit_all(events)
            if isinstance(outcome, Reservation):
                return outcome
            if isinstance(outcome, PauseRecord):
                raise Paused(outcome)
            if outcome is not None:
                raise BudgetExceeded(outcome)
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self.poll_s)

    async def _check_pauses(self, agent: str, run_id: str) -> None:
        record = await self.paused(agent, run_id)
        if record is not None:
            raise Paused(record)

    def _try_reserve(
        self,
        tx: LedgerTx,
        agent: str,
        run_id: str,
        amount: int,
        seq: int | None,
        now: float,
        events: list[Event],
    ) -> Reservation | Refusal | PauseRecord | None:
        """A reservation; a pause that holds; a refusal (after pausing); None: wait for others."""
        record = self._first_pause(tx, (COMPANY, agent, f"run:{run_id}"), now, events)
        if record is not None:
            return record
        windows = self._windows(agent, run_id, now)
        # held before spent: a step journaled in between is then counted twice (safe), never missed
        helds = tx.held_all([w for _, _, w in windows], now)
        spents = tx.spent_all([w for _, _, w in windows])
        for (scope, subject, window), spent in zip(windows, spents, strict=True):
            self._warn(scope, subject, window, spent, agent, run_id, now, events)
            if spent + amount > window.cap:
                refusal = Refusal(scope, subject, window.limit, window.cap, spent, amount, window.end)
                return self._refuse(tx, refusal, agent, run_id, seq, now, events)
        if any(s + h + amount > w.cap for (_, _, w), s, h in zip(windows, spents, helds, strict=True)):
            return None
        expires = now + self.reservation_ttl_s
        reservation = Reservation(_next_id(), agent, run_id, amount, now, expires, seq)
        tx.add_reservation(reservation)
        return reservation

    def _warn(
        self,
        scope: str,
        subject: str,
        window: Window,
        spent: int,
        agent: str,
        run_id: str,
        now: float,
        events: list[Event],
    ) -> None:
        """Once per window: ``budget.warning`` when spend passes ``warn_at`` of the cap."""
        if spent < window.cap * window.warn_at:
            return
        key = (subject if scope != "run" else run_id, window.limit, window.start)
        if key in self._warned:
            return
        self._warned.add(key)
        data = {
            "scope": scope,
            "limit": window.limit,
            "cap_usd": nano_to_usd(window.cap),
            "spent_usd": nano_to_usd(spent),
            "fraction": spent / window.cap,
            "agent": agent,
            "run_id": run_id,
        }
        events.append(Event("budget.warning", subject, data, at=now))

    def _refuse(
        self,
        tx: LedgerTx,
        refusal: Refusal,
        agent: str,
        run_id: str,
        seq: int | None,
        now: float,
        events: list[Event],
    ) -> Refusal:
        pause_subject = {"run": f"run:{run_id}", "agent": refusal.subject, "company": COMPANY}[refusal.scope]
        record = PauseRecord(
            subject=pause_subject,
            cause="budget",
            reason=refusal.reason().to_json(),
            limit=refusal.limit,
            cap=refusal.cap,
            window_end=refusal.window_end,
            agent=None if refusal.scope == "company" else agent,
            at=now,
        )
        tx.set_pause(record)
        data = {**refusal.evidence(), "agent": agent, "run_id": run_id, "step": seq, "paused": pause_subject}
        events.append(Event("budget.exceeded", pause_subject, data, at=now))
        kind = "run.paused" if refusal.scope == "run" else "agent.paused"
        events.append(Event(kind, pause_subject, data, at=now))
        return refusal

    async def settle(self, reservation: Reservation, cost: int, seq: int | None = None) -> None:
        """Replace the reservation by the real ``cost``; warn once per window past ``warn_at``.

        ``seq``, the journal step of the call, makes settling idempotent: a step settled twice (or
        already charged by the journal) is charged once. When the ledger's spend is the journal's
        own (a store ledger) and the call is journaled at a cost, there is nothing to write: the
        journal's row replaces the reservation when it lands.
        """
        seq = reservation.seq if seq is None else seq
        if not reservation.id and cost <= 0:
            return
        if self.ledger.charged_by_journal and seq is not None and cost > 0 and reservation.seq == seq:
            self._settled.set()
            return
        now = self.clock.time()
        entry = reservation.id if seq is None else f"{reservation.run_id}:{seq}"
        spend = Spend(entry, reservation.agent, reservation.run_id, cost, now, seq)
        windows = self._windows(reservation.agent, reservation.run_id, now)
        events: list[Event] = []

        def apply(tx: LedgerTx) -> None:
            tx.settle(reservation.id, spend)
            spents = tx.spent_all([w for _, _, w in windows])
            for (scope, subject, window), spent in zip(windows, spents, strict=True):
                self._warn(scope, subject, window, spent, reservation.agent, reservation.run_id, now, events)

        await self.ledger.run(apply)
        self._settled.set()
        self._emit_all(events)

    async def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call never happened (it failed before any usage)."""
        await self.ledger.run(lambda tx: tx.release(reservation.id))
        self._settled.set()

    async def spent_usd(
        self, agent: str | None = None, run_id: str | None = None, limit: str = "total_usd"
    ) -> float:
        """Settled spend of ``agent`` (None: the company) or ``run_id`` in the current ``limit`` window."""
        budget = (self.budgets.get(agent) if agent else self.company) or Budget()
        start, end = window_bounds(limit, budget.tz, self.clock.time())
        window = Window(agent=agent, run_id=run_id, start=start, end=end, cap=0, limit=limit, warn_at=1.0)
        return nano_to_usd(await self.ledger.run(lambda tx: tx.spent(window)))


def worst_case(rates: ModelRates, input_tokens: int, max_tokens: int) -> int:
    """The reservation for one call, in nano-USD."""
    return rates.worst_case_nano(input_tokens, max_tokens)


async def set_company_budget(store: Any, budget: Budget | None) -> None:
    """Store the company-wide caps where every agent, in any process or node, reads them at the
    start of each run (None removes them)."""
    if budget is None:
        await store.execute("DELETE FROM budget_config WHERE name = 'company'")
        return
    body = json.dumps(budget.to_json(), sort_keys=True)
    await store.execute(
        "INSERT INTO budget_config (name, body, at) VALUES ('company', ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET body = excluded.body, at = excluded.at",
        (body, store.clock.time()),
    )


async def load_company_budget(store: Any) -> Budget | None:
    """The company-wide caps stored by :func:`set_company_budget`, if any."""
    row = await store.fetchone("SELECT body FROM budget_config WHERE name = 'company'")
    return None if row is None else Budget.from_mapping(json.loads(row["body"]), "company budget")
