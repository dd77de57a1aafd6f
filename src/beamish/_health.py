"""``/healthz`` and ``/readyz`` for Kubernetes probes, on a tiny HTTP server of its own.

Liveness and readiness ask different things: ``/healthz`` — is the process alive with a responsive
event loop (answered by the loop itself, so a loop stuck for good never answers and the probe times
out; one stalled past the loop watchdog's threshold answers 503) — and ``/readyz`` — can it serve
(the store answers, the supervision tree is started). The server is plain asyncio, not the
dashboard's web stack: probes hit it every few seconds from the node's first second on, and it must
start before anything heavy is imported. It binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from beamish._net import listen

#: ``ready()`` answers None when ready, else why not (one line).
ReadyProbe = Callable[[], Awaitable[str | None]]
_READ_LIMIT_S = 5.0


class HealthServer:
    """Serves ``GET /healthz`` (``live()``) and ``GET /readyz`` (``await ready()``) on host:port."""

    def __init__(
        self, live: Callable[[], bool], ready: ReadyProbe, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.live, self.ready, self.host, self.port = live, ready, host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Bind and serve; returns the base URL (the port is the bound one, for port 0)."""
        fix = "stop that process, or pass another --health PORT (0 picks a free one)"
        sock = listen(self.host, self.port, "health probes", fix)
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = int(self._server.sockets[0].getsockname()[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_LIMIT_S)
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, body = await self._answer(method, path)
            payload = json.dumps(body).encode() + b"\n"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
            head = (
                f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (payload if method != "HEAD" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, dict[str, object]]:
        if path not in ("/healthz", "/readyz"):
            return 404, {"error": f"no such path {path!r}: try /healthz or /readyz"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"{method} is not allowed: use GET"}
        if path == "/healthz":
            if self.live():
                return 200, {"status": "ok"}
            return 503, {"status": "unhealthy", "why": "the event loop is blocked"}
        try:
            why = await self.ready()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
        if why is None:
            return 200, {"status": "ready"}
        return 503, {"status": "not ready", "why": why}
