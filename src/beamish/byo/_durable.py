"""``beamish.durable(client)``: every model request a client sends becomes a journal step of the run.

It works one level below any framework: at the SDK's HTTP transport. The ``openai`` and ``anthropic``
SDKs (and the frameworks built on them) all end in ``transport.handle_async_request(request)``; the
durable transport journals that exchange in the current run (:func:`~beamish.current_run`):

- a request already answered in the journal is answered from it, without a byte on the network —
  so a restarted agent re-running its framework from the start pays for nothing twice;
- a live request is reserved against the budget first (from the body's size and ``max_tokens``),
  then priced on the usage the answer reports, every streamed chunk is a watchdog heartbeat, and
  the answer's text and tool calls go to the loop detector, as for a native agent;
- an error answer (a 429, a 5xx) is handed to the SDK untouched and not journaled, so the SDK's
  own retries work and a replay numbers its steps the same.

Requests outside a run, and requests that are not model calls, pass straight through. A streamed
answer is read whole before the SDK sees it (it is journaled as one step); the chunks still beat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from beamish._exceptions import SpecError
from beamish.byo._context import active_run
from beamish.byo._exchange import exchange
from beamish.byo._wireformat import wire_format

T = TypeVar("T")

#: Headers that describe the bytes on the wire, not the (decoded) body the SDK is handed.
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection"}


def _with_body(module: Any, request: Any, raw: bytes, body: bytes) -> Any:
    """``request`` as sent, or a copy carrying ``body`` when a nudge changed it."""
    if body is raw:
        return request
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
    return module.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def _kept(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in _WIRE_HEADERS}


_CLASSES: dict[tuple[str, bool], type[Any]] = {}


def transport_class(module: Any, is_async: bool) -> type[Any]:
    """The durable transport for an ``httpx``-like module (``httpx``, or ``httpx2`` that the current
    provider SDKs use): a subclass of its own base transport, so clients accept it."""
    key = (module.__name__, is_async)
    if key not in _CLASSES:
        _CLASSES[key] = _async_transport(module) if is_async else _sync_transport(module)
    return _CLASSES[key]


def _async_transport(module: Any) -> type[Any]:
    class AsyncDurable(module.AsyncBaseTransport):  # type: ignore[misc]
        """Journals model requests of the current run; delegates everything else to ``inner``."""

        def __init__(self, inner: Any = None) -> None:
            self.inner = inner if inner is not None else module.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            ctx = active_run()
            fmt = wire_format(request.method, request.url.path)
            if ctx is None or fmt is None:
                return await self.inner.handle_async_request(request)
            raw = await request.aread()

            async def send(on_chunk: Callable[[], None], body: bytes) -> tuple[int, dict[str, str], bytes]:
                response = await self.inner.handle_async_request(_with_body(module, request, raw, body))
                parts: list[bytes] = []
                try:
                    async for chunk in response.aiter_bytes():
                        parts.append(chunk)
                        on_chunk()
                finally:
                    await response.aclose()
                return response.status_code, _kept(response.headers), b"".join(parts)

            status, headers, content = await exchange(ctx, fmt, request.method, request.url.path, raw, send)
            return module.Response(status, headers=headers, content=content, request=request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return AsyncDurable


def _sync_transport(module: Any) -> type[Any]:
    class SyncDurable(module.BaseTransport):  # type: ignore[misc]
        """For sync clients called from a worker thread of the run (``asyncio.to_thread``, a
        framework's thread pool): the step is journaled on the run's event loop."""

        def __init__(self, inner: Any = None) -> None:
            self.inner = inner if inner is not None else module.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            ctx = active_run()
            fmt = wire_format(request.method, request.url.path)
            if ctx is None or fmt is None:
                return self.inner.handle_request(request)
            if ctx.in_loop_thread() or ctx.loop is None:
                raise SpecError(
                    "a sync durable client was called on the agent's event loop, which it would block: "
                    "use the Async client, or call it through asyncio.to_thread"
                )
            raw = request.read()

            def fetch(body: bytes) -> tuple[int, dict[str, str], bytes]:
                response = self.inner.handle_request(_with_body(module, request, raw, body))
                try:
                    content = b"".join(response.iter_bytes())
                finally:
                    response.close()
                return response.status_code, _kept(response.headers), content

            async def send(on_chunk: Callable[[], None], body: bytes) -> tuple[int, dict[str, str], bytes]:
                answer = await asyncio.to_thread(fetch, body)
                on_chunk()
                return answer

            future = asyncio.run_coroutine_threadsafe(
                exchange(ctx, fmt, request.method, request.url.path, raw, send), ctx.loop
            )
            status, headers, content = future.result()
            return module.Response(status, headers=headers, content=content, request=request)

        def close(self) -> None:
            self.inner.close()

    return SyncDurable


def _module_of(obj: Any) -> Any:
    """The ``httpx``-like package ``obj``'s class comes from (SDKs subclass its clients)."""
    import importlib

    for cls in type(obj).__mro__:
        top = cls.__module__.split(".")[0]
        if top in ("httpx", "httpx2"):
            return importlib.import_module(top)
    return importlib.import_module(type(obj).__module__.split(".")[0])


def durable(client: T) -> T:
    """A copy of ``client`` whose model requests are journal steps of the current run.

    ``client``: an ``openai.OpenAI``/``AsyncOpenAI`` or ``anthropic.Anthropic``/``AsyncAnthropic``
    client (or any SDK client with ``with_options(http_client=...)``), or an ``httpx`` /
    ``httpx2`` ``Client``/``AsyncClient`` to hand a framework that takes an HTTP client. The copy
    keeps the original's transport (proxies, limits) underneath. Make it once, at import or in the
    entry function: outside a run its requests simply pass through.
    """
    http = getattr(client, "_client", None)
    if http is not None and callable(getattr(client, "with_options", None)):
        module = _module_of(http)
        is_async = isinstance(http, module.AsyncClient)
        inner = getattr(http, "_transport", None)
        wrapped = _http_client(module, is_async, inner, timeout=getattr(http, "timeout", None))
        copy: T = client.with_options(http_client=wrapped)  # type: ignore[attr-defined]
        return copy
    module = _module_of(client)
    if module.__name__ in ("httpx", "httpx2") and isinstance(client, module.AsyncClient | module.Client):
        is_async = isinstance(client, module.AsyncClient)
        c: Any = client
        return _http_client(  # type: ignore[no-any-return]
            module,
            is_async,
            getattr(client, "_transport", None),
            timeout=c.timeout,
            base_url=c.base_url,
            headers=c.headers,
            params=c.params,
            cookies=c.cookies,
            auth=c.auth,
            follow_redirects=c.follow_redirects,
        )
    raise SpecError(
        f"durable() takes an openai/anthropic SDK client or an httpx client, got {type(client).__name__}"
    )


def _http_client(module: Any, is_async: bool, inner: Any, timeout: Any, **options: Any) -> Any:
    """A client over the durable transport, with ``options`` (a plain client's base URL, headers,
    auth: what its requests need) kept."""
    if inner is not None and type(inner).__name__ in ("AsyncDurable", "SyncDurable"):
        inner = inner.inner  # already durable: do not journal twice
    transport = transport_class(module, is_async)(inner)
    kind = module.AsyncClient if is_async else module.Client
    return kind(
        transport=transport, timeout=timeout if timeout is not None else module.Timeout(600.0), **options
    )
