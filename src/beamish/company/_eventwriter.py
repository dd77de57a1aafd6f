"""The company's event writer: runtime events into the store's ``events`` table, in order, off the
node's hot path.

A write can fail (the store is gone, a disk is full) and the flush at stop can run out of time. Either
way the journal then misses lifecycle facts the operator will look for, so what was not stored is
counted and handed back at stop, for the company to report, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from beamish._events import Event
from beamish._tasks import cancel_and_wait

logger = logging.getLogger("beamish.company")


@dataclass(frozen=True)
class Unstored:
    """What the writer could not store: how many events, and why."""

    count: int
    reason: str

    @property
    def message(self) -> str:
        noun = "event was" if self.count == 1 else "events were"
        return f"{self.count} lifecycle {noun} not stored in the journal: {self.reason}"

    def event(self, subject: str) -> Event:
        return Event("events.unstored", subject, {"count": self.count, "reason": self.reason})


class EventWriter:
    """Events :meth:`put` before :meth:`start` wait for it; :meth:`stop` flushes within ``flush_s``."""

    def __init__(self, *, flush_s: float = 10.0) -> None:
        self.flush_s = flush_s
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failed = 0
        self._last_error = ""
        self._writing = False

    def put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def start(self, store: Any) -> None:
        self._task = asyncio.create_task(self._run(store), name="beamish-company-events")

    async def _run(self, store: Any) -> None:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            self._writing = True
            try:
                await store.append_event(event)
            except Exception as exc:
                self._failed += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("could not store event %s: %s", event.kind, exc)
            self._writing = False  # still True if the write was cancelled

    async def stop(self) -> Unstored | None:
        """Store what is queued (for at most ``flush_s`` seconds), then stop the writer. Returns what
        could not be stored (failed writes, events still queued, a crashed writer), or None."""
        reasons: list[str] = []
        if self._task is not None:
            self._queue.put_nowait(None)
            crashed = await cancel_and_wait(self._task, grace_s=self.flush_s)
            self._task = None
            if crashed is not None:
                reasons.append(f"the writer crashed ({type(crashed).__name__}: {crashed})")
        left = int(self._writing)  # cut off mid-write: not known to be stored
        while not self._queue.empty():
            left += self._queue.get_nowait() is not None
        if self._failed:
            reasons.append(f"{self._failed} failed to write (last: {self._last_error})")
        if left:
            reasons.append(f"{left} unwritten when the flush stopped after {self.flush_s:g}s")
        count, self._failed, self._writing = self._failed + left, 0, False
        if count == 0:
            return None
        return Unstored(count, "; ".join(reasons))
