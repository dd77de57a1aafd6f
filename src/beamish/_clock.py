"""Time, injected: restart windows, backoff, heartbeats and schedules read a clock object.

Production code uses :data:`SYSTEM_CLOCK`; tests pass :class:`beamish.testing.FakeClock`, which jumps
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What beamish needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (restart windows, timeouts)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (schedules, budget windows, journal timestamps)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


def utc_now(clock: Clock) -> datetime:
    """The clock's wall time as an aware UTC datetime."""
    return datetime.fromtimestamp(clock.time(), UTC)
