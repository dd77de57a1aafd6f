"""The node's events: the fan-out to sinks and streams (:class:`NodeEvents`), and ``node.events()``,
an async iterator subscribed from the moment it is made (:class:`EventStream`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from beamish._clock import Clock
from beamish._events import Event

logger = logging.getLogger("beamish.runtime")


class EventStream:
    """Every event the node emits after this stream was created, in order, until closed.

    Use ``async for event in node.events()`` (close it with ``aclose``), or ``async with
    node.events() as events``. Closing the node ends every stream.
    """

    def __init__(self, node: NodeEvents) -> None:
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


class NodeEvents:
    """The node's side of its events (a mixin of ``Node``): runtime events are queued and flushed
    once per loop turn, off the restart path, to every sink (the journal) and every open stream, in
    the order they happened, the events other layers ``emit`` included."""

    clock: Clock
    _loop: asyncio.AbstractEventLoop

    def _init_events(self) -> None:
        self._sinks: list[Callable[[Event], None]] = []
        self._streams: set[EventStream] = set()
        self._listening = False
        self._pending: list[tuple[str, str, Any, float]] = []
        self._flush_handle: asyncio.Handle | None = None

    def _bind(self) -> None:
        """Bind to the running event loop (the node does it on first use)."""
        raise NotImplementedError

    def events(self) -> EventStream:
        """An async iterator of every event from now on (close it, or use ``async with``)."""
        self._bind()
        return EventStream(self)

    def add_event_sink(self, sink: Callable[[Event], None]) -> None:
        """Call ``sink(event)`` for every event (e.g. the journal persisting them). Must not block."""
        self._sinks.append(sink)
        self._listening = True

    def remove_event_sink(self, sink: Callable[[Event], None]) -> None:
        """Stop calling ``sink``."""
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)
        self._listening = bool(self._sinks or self._streams)

    def emit(self, event: Event) -> None:
        """Publish an event from any layer to every sink and stream, in order with the runtime's own."""
        self._pending.append((event.kind, event.subject, event, event.at))
        self._schedule_flush()

    def _event(self, kind: str, subject: str, data: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue a runtime event; ``data`` may be a function, evaluated off the restart path."""
        self._pending.append((kind, subject, data, self.clock.time()))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                loop = self._loop or asyncio.get_running_loop()
            except RuntimeError:
                self._flush()
                return
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, []
        for kind, subject, data, at in pending:
            if isinstance(data, Event):
                event = data
            else:
                try:
                    payload = data() if callable(data) else data
                except Exception as exc:  # a reason that cannot serialise must not lose the event
                    payload = {"error": f"{type(exc).__name__}: {exc}"}
                event = Event(kind, subject, payload, at)
            for sink in list(self._sinks):
                try:
                    sink(event)
                except Exception as exc:
                    logger.warning("event sink %r raised %s: %s", sink, type(exc).__name__, exc)
            for stream in list(self._streams):
                stream._push(event)

    def _stream_closed(self, stream: EventStream) -> None:
        self._streams.discard(stream)
        self._listening = bool(self._sinks or self._streams)

    def _stream_opened(self, stream: EventStream) -> None:
        self._streams.add(stream)
        self._listening = True
