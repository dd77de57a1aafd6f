"""``node.events()``: an async iterator over the node's events, subscribed from the moment it is made."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from beamish._events import Event

if TYPE_CHECKING:
    from beamish.runtime._node import Node


class EventStream:
    """Every event the node emits after this stream was created, in order, until closed.

    Use ``async for event in node.events()`` (close it with ``aclose``), or ``async with
    node.events() as events``. Closing the node ends every stream.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        node._stream_opened(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = self._node._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def next(self, kind: str | None = None, subject: str | None = None) -> Event:
        """The next event (of ``kind`` and about ``subject``, when given), skipping others.

        Raises ``EOFError`` if the stream is closed first.
        """
        async for event in self:
            if (kind is None or event.kind == kind) and (subject is None or event.subject == subject):
                return event
        raise EOFError("the event stream was closed")

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()

    def _push(self, event: Event) -> None:
        if self._closed:
            return
        self._queue.append(event)
        self._wake()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._node._stream_closed(self)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
