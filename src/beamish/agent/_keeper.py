"""The keeper that enforces budgets: reserve before each model call, settle after, pause at a cap.

Before each model call the keeper *reserves* the call's worst case against every cap that applies
(the run, the agent's day / month / total, the company's), atomically, inside one ledger
transaction; after the call it *settles* the reservation to the real cost. So twenty concurrent runs
of one agent can never spend past a cap together: the twenty-first reservation that would not fit
is refused before any money is spent. A refused reservation pauses (the run for a per-run cap, the
agent or the whole company otherwise) with an :class:`~beamish.OverBudget` reason and an event; it
never crashes, so a supervisor sees no restart loop. A pause ends by ``resume``, by a raised cap, or
when its window rolls over in the budget's time zone.

The caps hold only while no call costs more than its reservation (``_bound`` says why the worst case
is a bound); a call that does is an *overshoot*: the agent is paused at once until someone resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exits import OverBudget
from beamish.agent._budget import COMPANY, Budget, BudgetExceeded, Paused, Refusal, window_bounds
from beamish.agent._ledger import Ledger, LedgerTx, PauseRecord, Reservation, Spend, Window, next_id
from beamish.agent._pricing import nano_to_usd

Emit = Callable[[Event], None]


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
            events.clear()  # a read tried first and run again as a write reports once
            return self._first_pause(tx, subjects, now, events)

        found = await self.ledger.read_first(check)  # a pause to lift is rare: read first
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
        wins = [w for _, _, w in windows]
        # held before spent: a step journaled in between is then counted twice (safe), never missed.
        # First with a bound of what is held (no probe of the journal per reservation): far from
        # the caps it settles the check; near one, the exact sums decide.
        helds = tx.held_bound_all(wins, now)
        spents = tx.spent_all(wins)
        if any(s + h + amount > w.cap for w, s, h in zip(wins, spents, helds, strict=True)):
            helds = tx.held_all(wins, now)
            spents = tx.spent_all(wins)
        for (scope, subject, window), spent in zip(windows, spents, strict=True):
            self._warn(scope, subject, window, spent, agent, run_id, now, events)
            if spent + amount > window.cap:
                refusal = Refusal(scope, subject, window.limit, window.cap, spent, amount, window.end)
                return self._refuse(tx, refusal, agent, run_id, seq, now, events)
        if any(s + h + amount > w.cap for (_, _, w), s, h in zip(windows, spents, helds, strict=True)):
            return None
        expires = now + self.reservation_ttl_s
        reservation = Reservation(next_id(), agent, run_id, amount, now, expires, seq)
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

    async def overshoot(
        self, reservation: Reservation, cost: int, model: str, usage: dict[str, Any]
    ) -> OverBudget | None:
        """A call cost more than it reserved: the bound it was reserved by did not hold, so none of
        the agent's caps can be trusted. Records ``budget.overshoot`` and, when any cap applies to
        the agent, pauses it (all its runs) at once; the pause holds until ``resume`` (no window
        rolling over, no raised cap lifts it). Returns the pause's reason (None: nothing capped)."""
        now = self.clock.time()
        agent = reservation.agent
        reason = OverBudget(limit="reservation", spent=nano_to_usd(cost), cap=nano_to_usd(reservation.amount))
        capped = bool(self._windows(agent, reservation.run_id, now))
        if capped:
            record = PauseRecord(
                subject=agent,
                cause="overshoot",
                reason=reason.to_json(),
                limit="reservation",
                cap=reservation.amount,
                agent=agent,
                at=now,
            )
            await self.ledger.run(lambda tx: tx.set_pause(record))
        data = {
            "agent": agent,
            "run_id": reservation.run_id,
            "step": reservation.seq,
            "model": model,
            "reserved_usd": nano_to_usd(reservation.amount),
            "cost_usd": nano_to_usd(cost),
            "over_usd": nano_to_usd(cost - reservation.amount),
            "usage": usage,
            "paused": agent if capped else None,
        }
        self.emit(Event("budget.overshoot", agent, data, at=now))
        if not capped:
            return None
        self.emit(Event("agent.paused", agent, {**data, "cause": "overshoot"}, at=now))
        return reason

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
