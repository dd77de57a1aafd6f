"""Wake-ups for mailbox waiters: PostgreSQL NOTIFY (only a message id travels), polling as fallback.

A notification is only a hint that something changed; the waiter always re-reads the store. So a lost
notification (listener reconnecting, SQLite across processes) costs at most one polling interval,
never a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

from beamish._clock import Clock
from beamish._tasks import cancel_and_wait

if TYPE_CHECKING:
    from beamish.journal import Store

log = logging.getLogger("beamish.bus")

CHANNEL = "beamish_mailbox"


class Waker:
    """Listens on the store's mailbox channel and wakes every local waiter on each notification."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._waiters: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._probe: str | None = None
        self._probed = asyncio.Event()
        self.notifications = 0
        #: Grows with every wake-up; a waiter that read it before looking at the store passes it to
        #: ``wait`` so a wake-up that landed in between is not lost.
        self.generation = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="beamish-mailbox-listener")

    async def started(self, attempts: int = 100) -> bool:
        """Wait until the listener demonstrably receives notifications (a probe round trip)."""
        self.start()
        for _ in range(attempts):
            self._probe = f"probe:{uuid.uuid4().hex}"
            self._probed.clear()
            await self._store.notify(CHANNEL, self._probe)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._probed.wait(), 0.05)
                return True
        return False

    async def _listen(self) -> None:
        try:
            async for payload in self._store.listen(CHANNEL):
                if payload == self._probe:
                    self._probed.set()
                    continue
                self.notifications += 1
                self.wake()
        except asyncio.CancelledError:
            raise
        except Exception:  # the listener is an optimisation: polling still delivers
            log.exception("mailbox listener stopped; waiters fall back to polling")

    def wake(self) -> None:
        """Wake every waiter of this process now."""
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, seconds: float, since: int | None = None) -> None:
        """Return on the next wake-up, or after ``seconds`` on the clock (the polling fallback).

        With ``since`` (a :attr:`generation` read earlier), return at once if a wake-up came since.
        """
        if seconds <= 0 or (since is not None and since != self.generation):
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            self._waiters.discard(fut)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.wake()
