"""Test helpers: a fake clock that jumps, and waits that never sleep.

Public, but not part of the runtime API proper (as ``trio.testing``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """A clock that only moves when told to, or (``autojump``) when every task is waiting on it.

    ``await clock.sleep(s)`` parks the caller until ``advance`` moves time past its deadline.
    """

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


__all__ = ["FakeClock", "settle", "wait_for"]
