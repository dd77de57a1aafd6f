"""Test helpers: a fake clock that jumps, and waits that never sleep.

Public, but not part of the runtime API proper (as ``trio.testing``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beamish._events import Event

if TYPE_CHECKING:
    from beamish.runtime._node import Node
    from beamish.runtime._ref import ActorRef
    from beamish.runtime._supervisor_ref import SupervisorRef


class FakeClock:
    """A clock that only moves when told to, or (``autojump``) when every task is waiting on it.

    ``await clock.sleep(s)`` parks the caller until ``advance`` moves time past its deadline.
    A store opened with it reads lease, heartbeat and due times from it on PostgreSQL too
    (``drives_store_time``), so a test can jump over a lease instead of waiting for the server's clock.
    """

    drives_store_time = True

    def __init__(self, start: float = 0.0, wall_start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def set_wall(self, epoch_s: float) -> None:
        """Move the wall clock to ``epoch_s`` without moving the monotonic clock (like NTP would)."""
        self._wall_offset = epoch_s - self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def call_later(
        self, seconds: float, callback: Callable[..., object], *args: object
    ) -> asyncio.Future[None]:
        """Run ``callback(*args)`` once time has moved ``seconds`` on; ``.cancel()`` the result to drop it.

        Registers at once (unlike a task that would call ``sleep`` later), so a ``jump`` right after
        fires it: the runtime uses this for shutdown timeouts and backoff on a fake clock.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), fut))

        def fire(done: asyncio.Future[None]) -> None:
            if not done.cancelled():
                callback(*args)

        fut.add_done_callback(fire)
        return fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        for when, _, fut in sorted(self._sleepers):
            if not fut.done():
                return when
        return None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance({seconds}))")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def jump(self, seconds: float) -> None:
        """``advance`` and then let the woken tasks run."""
        self.advance(seconds)
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run: yields to the loop ``rounds`` times."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_for(predicate: object, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true, yielding to the loop; fails after ``timeout`` real seconds.

    This polls by yielding, never by sleeping a fixed time; the timeout is only a safety bound.
    """
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.001)


async def wait_for_child(
    sup: SupervisorRef, child_id: Any, *, other_than: ActorRef | None = None, timeout: float = 5.0
) -> ActorRef:
    """Wait until the supervisor's child ``child_id`` runs (as a ref other than ``other_than``); return it.

    Woken by the supervisor's own changes, never by polling; ``timeout`` (real seconds) is a safety
    bound. Fails at once if the supervisor exits first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _, ref = sup._child_ref(child_id)
        if ref is not None and ref.alive and ref is not other_than:
            return ref
        if not sup.alive:
            raise AssertionError(f"supervisor {sup!r} exited ({sup.reason!r}) before child {child_id!r} ran")
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for child {child_id!r} of {sup!r}")
        change = sup._next_change()
        try:
            await asyncio.wait_for(change, remaining)
        except TimeoutError:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for child {child_id!r} of {sup!r}"
            ) from None


async def wait_for_restart(
    sup: SupervisorRef, child_id: Any, old: ActorRef, timeout: float = 5.0
) -> ActorRef:
    """Wait until child ``child_id`` runs again as a new incarnation (not ``old``); return its new ref."""
    return await wait_for_child(sup, child_id, other_than=old, timeout=timeout)


class EventLog:
    """Records a node's events as they happen (an event sink), and waits for them without sleeping."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.events: list[Event] = []
        self._waiters: list[asyncio.Future[None]] = []
        node.add_event_sink(self._record)

    def _record(self, event: Event) -> None:
        self.events.append(event)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def of(self, kind: str, subject: str | None = None) -> list[Event]:
        """The recorded events of ``kind`` (about ``subject``, when given), oldest first."""
        return [e for e in self.events if e.kind == kind and (subject is None or e.subject == subject)]

    def kinds(self) -> list[str]:
        """The kinds of every recorded event, in order."""
        return [e.kind for e in self.events]

    async def wait_for(
        self, kind: str, subject: str | None = None, count: int = 1, timeout: float = 5.0
    ) -> Event:
        """Wait until ``count`` events of ``kind`` (about ``subject``) were recorded; return the last one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.of(kind, subject)
            if len(found) >= count:
                return found[count - 1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {count} x {kind} ({subject})")
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {count} x {kind} ({subject})"
                ) from None

    def close(self) -> None:
        """Stop recording."""
        self.node.remove_event_sink(self._record)


def record_events(node: Node) -> EventLog:
    """Start recording ``node``'s events: ``log = record_events(node)``; ``await log.wait_for(kind)``."""
    return EventLog(node)


__all__ = [
    "EventLog",
    "FakeClock",
    "record_events",
    "settle",
    "wait_for",
    "wait_for_child",
    "wait_for_restart",
]
