"""The ``Model`` protocol every provider adapter implements, and the stream stall guard they share.

A model call streams by default so that every chunk is a heartbeat the watchdog can see
(``on_chunk``), and so that a stream that goes quiet is noticed: ``first_chunk_timeout_s`` bounds the
wait for the first chunk, ``next_chunk_timeout_s`` each gap after it. A stall raises
:class:`~beamish.errors.ModelTimeout`, which the retry layer treats like any other timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar, runtime_checkable

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._exceptions import ModelTimeout
from beamish._tasks import cancel_and_wait
from beamish.agent._messages import ModelRequest, ModelResponse

T = TypeVar("T")

#: Called once per streamed chunk (and once for a non-streamed answer): a progress heartbeat.
ChunkCallback = Callable[[], None]


@runtime_checkable
class Model(Protocol):
    """What the agent loop needs of a model.

    ``name`` is the registry string (``"anthropic:claude-sonnet-4-5"``, ``"scripted:/path/file.toml"``),
    used for pricing and telemetry; ``provider`` and ``model`` are its two halves.
    """

    name: str
    provider: str
    model: str

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkCallback | None = None
    ) -> ModelResponse:
        """Answer ``request``; call ``on_chunk`` per streamed chunk; raise a ``ModelError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


async def guard_stream(
    stream: AsyncIterator[T],
    *,
    first_chunk_timeout_s: float | None,
    next_chunk_timeout_s: float | None,
    on_chunk: ChunkCallback | None = None,
    clock: Clock = SYSTEM_CLOCK,
    what: str = "model stream",
) -> AsyncIterator[T]:
    """Yield ``stream``'s items, raising ``ModelTimeout`` when the first or next one is late.

    Timeouts are measured on ``clock`` so tests can stall a stream on a fake clock.
    """
    first = True
    iterator = stream.__aiter__()
    while True:
        limit = first_chunk_timeout_s if first else next_chunk_timeout_s
        try:
            item = await _next_within(iterator, limit, clock)
        except StopAsyncIteration:
            return
        except TimeoutError:
            which = "first" if first else "next"
            raise ModelTimeout(f"{what} stalled: no {which} chunk within {limit}s") from None
        first = False
        if on_chunk is not None:
            on_chunk()
        yield item


async def _next_within(iterator: AsyncIterator[T], limit: float | None, clock: Clock) -> T:
    if limit is None:
        return await iterator.__anext__()
    if clock is SYSTEM_CLOCK:
        async with asyncio.timeout(limit):
            return await iterator.__anext__()
    nxt: asyncio.Task[T] = asyncio.ensure_future(iterator.__anext__())
    timer = asyncio.ensure_future(clock.sleep(limit))
    try:
        await asyncio.wait({nxt, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if nxt.done():
        return nxt.result()
    await cancel_and_wait(nxt)
    raise TimeoutError
