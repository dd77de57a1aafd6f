"""The store-backed scheduler: each due tick becomes exactly one run, across crashes and nodes.

A pass has two steps, so a crash at any point loses nothing and repeats nothing:

1. *Claim* (one transaction): for each schedule whose next tick is due, decide every pending tick
   under the misfire policy and insert one ``schedule_fires`` row per tick. ``UNIQUE(schedule_id,
   nominal_fire_time)`` means one node wins each tick. In the same transaction the schedule's cursor
   moves past the decided ticks, each fired tick's run ``schedule:<id>:<nominal UTC time>`` is created
   (an existing run_id wins), and the ``schedule.fired`` / ``schedule.missed`` events are written.
2. *Dispatch*: hand each claimed run to the agent layer through :class:`Submit` (idempotent on run_id),
   then mark the fires dispatched. A fire left ``claimed`` longer than ``dispatch_lease_s`` (its
   claimer died between the two steps) is re-claimed and dispatched by any scheduler: the same run_id,
   so still one run.

Whether a tick is due is decided on the store's clock (the database's on PostgreSQL, read in the claim
transaction), and the wait for the next one is measured against that clock too, so a node whose own
clock is minutes off fires nothing early and nothing late.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._events import Event
from beamish._exceptions import ScheduleError, SpecError
from beamish.journal._payload import envelope
from beamish.journal._sql import SyncTx
from beamish.schedule._claim import (
    Fired,
    claim,
    reclaim_stale,
    schedule_from_spec,
    utc,
)
from beamish.schedule._cron import Schedule
from beamish.schedule._history import FireRecord, SuccessRate, fire_history, success_rate

if TYPE_CHECKING:
    from beamish.journal import Store

log = logging.getLogger("beamish.schedule")

_DISPATCH_CONCURRENCY = 32
_CLAIM_CHUNK = 50  # schedules per claim transaction (also bounds how long SQLite's writer is held)
_MAX_CHUNKS_PER_PASS = 200


class Submit(Protocol):
    """How a fired tick reaches an agent: ``node.submit`` fits (idempotent on ``run_id``)."""

    async def __call__(self, agent: str, input: Any, *, run_id: str) -> object: ...


@dataclass
class PassReport:
    """What one scheduler pass did (for tests, logs and the benchmark)."""

    fired: list[str] = field(default_factory=list)
    missed: int = 0
    redispatched: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)


class Scheduler:
    """Fires the schedules stored in ``store``; run one per node (or several: ticks still fire once).

    ``events`` receives each ``schedule.fired`` / ``schedule.missed`` Event this scheduler decided
    (e.g. ``pubsub.publish`` or the node's event stream); the store's events table gets them too.
    A tick whose hand-over was attempted ``max_dispatch_attempts`` times (failing, or its dispatcher
    dying) is not retried again: its run is parked as ``needs_attention`` with a ``run.needs_attention``
    event — a bound and a way up, never an endless retry.
    """

    def __init__(
        self,
        store: Store,
        submit: Submit,
        *,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
        poll_s: float = 1.0,
        dispatch_lease_s: float = 30.0,
        max_dispatch_attempts: int = 5,
        events: Callable[[Event], object] | None = None,
    ) -> None:
        if poll_s <= 0 or dispatch_lease_s <= 0:
            raise SpecError(f"poll_s and dispatch_lease_s must be > 0, got {poll_s!r}, {dispatch_lease_s!r}")
        self.store = store
        self.submit = submit
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_s = poll_s
        self.dispatch_lease_s = dispatch_lease_s
        if max_dispatch_attempts < 1:
            raise SpecError(f"max_dispatch_attempts must be >= 1, got {max_dispatch_attempts!r}")
        self.max_dispatch_attempts = max_dispatch_attempts
        self._events = events
        self._kick = asyncio.Event()

    # --- managing schedules -------------------------------------------------------------------------

    async def add(self, schedule_id: str, schedule: Schedule, agent: str, input: Any) -> None:
        """Store (or update) a schedule. A new one fires from now on; an updated one keeps its cursor,
        so changing a cron expression never replays past ticks."""
        if not schedule_id or ":" in schedule_id or len(schedule_id) > 200:
            raise ScheduleError(f"schedule id: expected a non-empty name without ':', got {schedule_id!r}")
        if not agent:
            raise ScheduleError(f"schedule {schedule_id!r}: expected an agent name")
        spec = json.dumps(schedule.to_json(), sort_keys=True)
        body = envelope(input, f"schedule {schedule_id!r} input", error=ScheduleError)

        def work(tx: SyncTx) -> None:
            now = self._now(tx)
            row = tx.fetchone("SELECT cursor_at FROM schedules WHERE schedule_id = ?", (schedule_id,))
            cursor = float(row["cursor_at"]) if row else now
            nxt = schedule.next_fire(datetime.fromtimestamp(cursor, UTC))
            due = schedule.due_time(schedule_id, nxt).timestamp()
            tx.execute(
                "INSERT INTO schedules (schedule_id, agent, input, spec, enabled, cursor_at, next_due_at, "
                "next_nominal_at, following_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 1, ?, ?, ?, NULL, ?, ?) ON CONFLICT (schedule_id) DO "
                "UPDATE SET agent = excluded.agent, input = excluded.input, spec = excluded.spec, "
                "enabled = 1, next_due_at = excluded.next_due_at, "
                "next_nominal_at = excluded.next_nominal_at, following_at = NULL, "
                "updated_at = excluded.updated_at",
                (schedule_id, agent, body, spec, cursor, due, nxt.timestamp(), now, now),
            )

        await self.store.run(work)
        self._kick.set()

    async def sync(self, entries: Iterable[tuple[str, Schedule, str, Any]]) -> list[str]:
        """Make the store hold exactly ``entries`` ``(id, schedule, agent, input)``: add or update each,
        and stop every other stored schedule (a schedule deleted from the config must not keep
        firing). Returns the ids stopped; their history stays."""
        wanted = list(entries)
        for sid, schedule, agent, input in wanted:
            await self.add(sid, schedule, agent, input)
        keep = {sid for sid, *_ in wanted}
        rows = await self.store.fetchall("SELECT schedule_id FROM schedules WHERE enabled = 1")
        stopped = [str(r["schedule_id"]) for r in rows if str(r["schedule_id"]) not in keep]
        for sid in stopped:
            await self.remove(sid)
        return stopped

    async def remove(self, schedule_id: str) -> bool:
        """Stop a schedule (its history stays). Returns False if there was no such schedule."""
        n = await self.store.run(
            lambda tx: tx.execute(
                "UPDATE schedules SET enabled = 0, next_due_at = NULL, updated_at = ? WHERE schedule_id = ?",
                (self._now(tx), schedule_id),
            )
        )
        return n > 0

    async def history(self, schedule_id: str, limit: int = 50) -> list[FireRecord]:
        """The latest ticks of a schedule, newest first: due, fired or missed, late by, run outcome."""
        return await self.store.read(lambda tx: fire_history(tx, schedule_id, limit))

    async def success_rate(self, schedule_id: str, since: float | None = None) -> SuccessRate:
        """Succeeded runs over decided ticks (a missed tick counts against it)."""
        return await self.store.read(lambda tx: success_rate(tx, schedule_id, since))

    # --- running ------------------------------------------------------------------------------------

    async def run_forever(self, max_consecutive_failures: int = 10) -> None:
        """Pass after pass; sleeps until the next tick is due (at most ``poll_s``). Cancel to stop.

        A failing pass (the store hiccupped) is retried after ``poll_s``; after
        ``max_consecutive_failures`` in a row the error is raised, so the scheduler's supervisor sees
        it (restart, then escalation) instead of a loop that retries forever.
        """
        failures = 0
        while True:
            try:
                await self.run_pass()
                wait = await self._seconds_to_next_due()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                if failures >= max_consecutive_failures:
                    raise
                log.exception("scheduler pass failed (%d in a row); retrying in %.1fs", failures, self.poll_s)
                wait = self.poll_s
            await self._wait(wait)

    async def run_pass(self) -> PassReport:
        """Claim every due tick, dispatch what this scheduler claimed, and rescue stale claims."""
        report = PassReport()
        # In chunks, each handed over as soon as it is claimed: the first of 1,000 ticks due at
        # 14:00 need not wait for the last one's claim.
        for _ in range(_MAX_CHUNKS_PER_PASS):
            fired, events, rows = await self.store.run(
                lambda tx: claim(tx, self._now(tx), _CLAIM_CHUNK, self.owner, self.store.payload_threshold)
            )
            report.missed += sum(1 for e in events if e.kind == "schedule.missed")
            for event in events:
                self._emit(event)
            for fire, ok in zip(fired, await self._dispatch_all(fired), strict=True):
                (report.fired if ok else report.failed).append(fire.run_id)
            if rows < _CLAIM_CHUNK:
                break
        await self._precompute()
        stale, parked = await self.store.run(
            lambda tx: reclaim_stale(
                tx, self._now(tx), self.owner, self.dispatch_lease_s, self.max_dispatch_attempts
            )
        )
        for event in parked:
            self._emit(event)
        report.abandoned = [str(e.data["run_id"]) for e in parked]
        for fire, ok in zip(stale, await self._dispatch_all(stale), strict=True):
            (report.redispatched if ok else report.failed).append(fire.run_id)
        return report

    async def _dispatch_all(self, fires: list[Fired]) -> list[bool]:
        """Hand fires over concurrently (bounded), so 1,000 ticks at 14:00 are not served in line;
        then record every successful hand-over in one transaction."""
        if not fires:
            return []
        gate = asyncio.Semaphore(_DISPATCH_CONCURRENCY)

        async def one(fire: Fired) -> float | None:
            async with gate:
                return await self._dispatch(fire)

        times = list(await asyncio.gather(*(one(f) for f in fires)))
        done = [
            (t, f.schedule_id, f.nominal_fire_time)
            for f, t in zip(fires, times, strict=True)
            if t is not None
        ]

        def mark(tx: SyncTx) -> None:
            for row in done:
                tx.execute(
                    "UPDATE schedule_fires SET status = 'dispatched', dispatched_at = ? "
                    "WHERE schedule_id = ? AND nominal_fire_time = ? AND status = 'claimed'",
                    row,
                )

        if done:
            await self.store.run(mark)
        return [t is not None for t in times]

    async def _precompute(self) -> None:
        """Work out each schedule's tick after next, off the claim path (and outside any lock)."""
        rows = await self.store.read(
            lambda tx: tx.fetchall(
                "SELECT schedule_id, spec, next_nominal_at FROM schedules WHERE enabled = 1 "
                "AND following_at IS NULL AND next_nominal_at IS NOT NULL LIMIT 5000"
            )
        )
        if not rows:
            return

        def compute() -> list[tuple[float, str, float]]:
            out = []
            for r in rows:
                nominal = float(r["next_nominal_at"])
                following = schedule_from_spec(str(r["spec"])).next_fire(utc(nominal))
                out.append((following.timestamp(), str(r["schedule_id"]), nominal))
            return out

        updates = await asyncio.to_thread(compute)

        def store(tx: SyncTx) -> None:
            for update in updates:  # only where no claim moved the schedule on meanwhile
                tx.execute(
                    "UPDATE schedules SET following_at = ? WHERE schedule_id = ? AND next_nominal_at = ? "
                    "AND following_at IS NULL",
                    update,
                )

        await self.store.run(store)

    def _now(self, tx: SyncTx) -> float:
        """The time due-ness is decided at: the database's (PostgreSQL), else this scheduler's clock."""
        return self.store.decide_now(tx, self.clock)

    async def _seconds_to_next_due(self) -> float:
        def look(tx: SyncTx) -> float | None:
            row = tx.fetchone("SELECT MIN(next_due_at) AS t FROM schedules WHERE enabled = 1")
            return None if row is None or row["t"] is None else float(row["t"]) - self._now(tx)

        wait = await self.store.read(look)
        return self.poll_s if wait is None else min(self.poll_s, max(0.0, wait))

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        kicked = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({sleeper, kicked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            kicked.cancel()
            self._kick.clear()

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            try:
                self._events(event)
            except Exception:
                log.exception("schedule event sink failed for %s", event.kind)

    async def _dispatch(self, fire: Fired) -> float | None:
        """Hand the run over (idempotent on run_id); returns when, or None if it failed."""
        try:
            await self.submit(fire.agent, fire.input, run_id=fire.run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left 'claimed': after dispatch_lease_s some scheduler re-dispatches the same run_id.
            log.exception("dispatching %s failed; it will be retried", fire.run_id)
            return None
        return self.clock.time()
