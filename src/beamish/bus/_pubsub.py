"""In-node topics (Phoenix.PubSub-style): fire-and-forget fan-out for what may be dropped.

``publish`` never blocks and never fails because of a subscriber: each subscription has a bounded
buffer, and a slow reader loses its *oldest* messages (counted in ``dropped``), so one stuck dashboard
cannot hold back the node. What must not be lost goes through the durable mailbox instead.

Topics are dot-separated names. A subscription names one topic exactly, or a prefix pattern ending in
``.*`` (``"schedule.*"`` gets ``schedule.fired`` and ``schedule.missed``), or ``"*"`` for everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from beamish._exceptions import SpecError

log = logging.getLogger("beamish.bus")

Handler = Callable[[str, Any], object]


class Subscription:
    """One subscriber's view of a topic: iterate it (``async for topic, message in sub``) or ``get()``.

    Close it (or leave its ``with`` block) to stop receiving; a closed, drained subscription ends the
    iteration.
    """

    def __init__(self, bus: PubSub, pattern: str, buffer: int, handler: Handler | None) -> None:
        self.pattern = pattern
        self.dropped = 0
        self._bus = bus
        self._buffer: deque[tuple[str, Any]] = deque()
        self._limit = buffer
        self._handler = handler
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def _deliver(self, topic: str, message: Any) -> bool:
        if self._handler is not None:
            try:
                self._handler(topic, message)
            except Exception:  # a broken handler must not break the publisher
                log.exception("pubsub handler for %r failed; unsubscribing it", self.pattern)
                self.close()
                return False
            return True
        if len(self._buffer) >= self._limit:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append((topic, message))
        self._wake()
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> tuple[str, Any] | None:
        """The next ``(topic, message)`` if one is buffered, else None."""
        return self._buffer.popleft() if self._buffer else None

    async def get(self, timeout: float | None = None) -> tuple[str, Any]:
        """Wait for the next ``(topic, message)``; raises TimeoutError after ``timeout`` seconds and
        EOFError once the subscription is closed and drained."""
        while not self._buffer:
            if self.closed:
                raise EOFError(f"subscription to {self.pattern!r} is closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._waiter), timeout)
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def __len__(self) -> int:
        return len(self._buffer)

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    def close(self) -> None:
        """Stop receiving; messages already buffered can still be read."""
        if not self.closed:
            self.closed = True
            self._bus._remove(self)
            self._wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PubSub:
    """Topics within one node. Cheap to publish to when nobody listens (one dict lookup)."""

    def __init__(self, buffer: int = 1024) -> None:
        if buffer < 1:
            raise SpecError(f"buffer: expected at least 1 message, got {buffer!r}")
        self._buffer = buffer
        self._exact: dict[str, list[Subscription]] = {}
        self._patterns: list[Subscription] = []

    def subscribe(
        self, pattern: str, *, buffer: int | None = None, handler: Handler | None = None
    ) -> Subscription:
        """Subscribe to a topic, a ``prefix.*`` pattern or ``"*"``.

        With ``handler``, each message is handed to ``handler(topic, message)`` synchronously inside
        ``publish`` (e.g. an actor's ``cast``); a handler that raises is unsubscribed.
        """
        _check_pattern(pattern)
        size = self._buffer if buffer is None else buffer
        if size < 1:
            raise SpecError(f"buffer: expected at least 1 message, got {size!r}")
        sub = Subscription(self, pattern, size, handler)
        if pattern == "*" or pattern.endswith(".*"):
            self._patterns.append(sub)
        else:
            self._exact.setdefault(pattern, []).append(sub)
        return sub

    def publish(self, topic: str, message: Any) -> int:
        """Deliver ``message`` to every current subscriber of ``topic``; returns how many got it."""
        if not topic or topic.endswith(".*") or topic == "*":
            raise SpecError(f"topic: expected a concrete topic name, got {topic!r}")
        delivered = 0
        for sub in tuple(self._exact.get(topic, ())):
            delivered += sub._deliver(topic, message)
        for sub in tuple(self._patterns):
            if sub.pattern == "*" or topic.startswith(sub.pattern[:-1]):
                delivered += sub._deliver(topic, message)
        return delivered

    def subscribers(self, topic: str) -> int:
        """How many subscriptions a message on ``topic`` would reach now."""
        exact = len(self._exact.get(topic, ()))
        return exact + sum(1 for s in self._patterns if s.pattern == "*" or topic.startswith(s.pattern[:-1]))

    def _remove(self, sub: Subscription) -> None:
        if sub in self._patterns:
            self._patterns.remove(sub)
            return
        subs = self._exact.get(sub.pattern)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._exact[sub.pattern]


def _check_pattern(pattern: object) -> None:
    ok = (
        isinstance(pattern, str)
        and bool(pattern)
        and (pattern == "*" or "*" not in pattern or (pattern.endswith(".*") and "*" not in pattern[:-2]))
    )
    if not ok:
        raise SpecError(f"topic pattern: expected 'name', 'prefix.*' or '*', got {pattern!r}")
