"""The budget ledger: where spend, reservations and pauses live, and the one kept in memory.

A ledger is changed only inside one serialised transaction (:meth:`Ledger.run`), so the keeper's
check-then-reserve is atomic. :class:`MemoryLedger` serves tests, the benchmark and nodes without a
store; the store's ledger, shared by every process and node, is in ``_store_ledger``.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_ID = ["", -1]  # a random prefix per process (re-drawn after a fork) and the pid it was drawn in
_ID_COUNTER = itertools.count()


def next_id() -> str:
    """A reservation id unique across processes and nodes, cheaper than a uuid4 per call."""
    pid = os.getpid()
    if _ID[1] != pid:
        _ID[:] = [uuid.uuid4().hex[:16], pid]
    return f"{_ID[0]}-{next(_ID_COUNTER)}"


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

    ``cause`` is ``budget``, ``overshoot`` (a call cost more than it reserved) or ``loop``;
    ``reason`` the exit reason as JSON. A budget pause keeps the ``limit``, the ``cap`` it hit and
    when its window ends, so it can lift itself.
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

    def held_bound_all(self, windows: Sequence[Window], now: float) -> list[int]:
        """At least :meth:`held_all` of each window, and cheaper: it may still count reservations
        whose spend is already recorded (what a check far from its caps needs to know)."""
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

    async def read_first(self, fn: Callable[[LedgerTx], T]) -> T:
        """:meth:`run` for a transaction that rarely writes: tried on a read snapshot (no writer
        lock, no commit) and run again as :meth:`run` only if it has to write."""
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

    async def read_first(self, fn: Callable[[LedgerTx], T]) -> T:
        return await self.run(fn)


class _MemoryTx:
    def __init__(self, ledger: MemoryLedger) -> None:
        self._l = ledger

    def spent_all(self, windows: Sequence[Window]) -> list[int]:
        return [self.spent(w) for w in windows]

    def held_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return [self.held(w, now) for w in windows]

    def held_bound_all(self, windows: Sequence[Window], now: float) -> list[int]:
        return self.held_all(windows, now)

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
