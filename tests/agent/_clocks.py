"""A clock for retry tests: sleeps return at once and are recorded, so waits can be asserted."""

from __future__ import annotations

import asyncio
import time


class RecordingClock:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self._now = 0.0

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)
