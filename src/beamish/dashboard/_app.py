"""The dashboard's Starlette application: the page, the tree, live events over SSE, resume.

Security, because a dashboard that can resume a budget-paused agent can spend money:
- on loopback it answers only requests whose ``Host`` is a loopback name (no DNS rebinding);
- with a token, every request must present it (header, cookie or ``?token=``), compared in constant
  time; :func:`check_bind` refuses a non-loopback bind without one;
- a request carrying an ``Origin`` must come from the dashboard's own origin (no cross-site POSTs,
  no cross-site event reading).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from beamish._exceptions import BeamishError
from beamish._net import is_loopback
from beamish._redact import redact
from beamish.company._status import DashboardSource, UnknownAgent
from beamish.dashboard._decisions import LINK_PREFIX, decision_routes
from beamish.dashboard._page import PAGE

_COOKIE = "beamish_dashboard"


class _Guard:
    """ASGI middleware: host, token and origin checks before any route runs."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        denied = self._deny(request)
        if denied is not None:
            await denied(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _deny(self, request: Request) -> Response | None:
        host_header = request.headers.get("host", "")
        hostname = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        if self.loopback_only and not is_loopback(hostname):
            return PlainTextResponse("forbidden host", status_code=403)
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{host_header}":
            return PlainTextResponse("forbidden origin", status_code=403)
        signed = request.url.path.startswith(LINK_PREFIX)  # a decision link carries its own signature
        if self.token is not None and not signed and not self._token_ok(request):
            return PlainTextResponse("a valid token is required", status_code=401)
        return None

    def _token_ok(self, request: Request) -> bool:
        expected = self.token.encode() if self.token else b""
        auth = request.headers.get("authorization", "")
        candidates = [
            auth[7:] if auth.lower().startswith("bearer ") else "",
            request.cookies.get(_COOKIE, ""),
            request.query_params.get("token", ""),
        ]
        ok = False
        for given in candidates:
            # every candidate is compared, in constant time, so timing says nothing about which matched
            ok |= hmac.compare_digest(given.encode(), expected)
        return ok


def create_app(
    source: DashboardSource,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    link_secret: str | None = None,
) -> ASGIApp:
    """The dashboard as an ASGI app (served by the node, or mounted by the user). ``link_secret``
    signs decision links (default: the token); with neither, links are refused."""

    async def page(request: Request) -> Response:
        response = HTMLResponse(PAGE)
        if token is not None and request.query_params.get("token"):
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def tree(request: Request) -> Response:
        snapshot = await source.tree()
        return JSONResponse(redact(snapshot.to_json()))

    async def events(request: Request) -> Response:
        raw = request.query_params.get("replay", "50")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
            return JSONResponse({"error": f"replay must be a whole number of events, got {raw[:40]!r}"}, 400)
        replay = int(raw)

        async def stream() -> AsyncIterator[str]:
            yield ": connected\n\n"
            async for event in source.events(replay=replay):
                if await request.is_disconnected():
                    break
                payload = json.dumps(redact(event.to_json()), default=str)
                yield f"event: beamish\ndata: {payload}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def resume(request: Request) -> Response:
        agent = request.path_params["agent"]
        try:
            await source.resume(agent)
        except UnknownAgent:
            return JSONResponse({"error": f"no agent named {agent!r}"}, status_code=404)
        except (RuntimeError, BeamishError) as exc:  # e.g. no node runs, or it is not paused: nothing changed
            return JSONResponse({"error": redact(str(exc))}, status_code=409)
        return JSONResponse({"resumed": agent})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/tree", tree),
            Route("/api/events", events),
            Route("/api/agents/{agent}/resume", resume, methods=["POST"]),
            *decision_routes(source, link_secret or token),
        ]
    )
    return _Guard(app, token=token, loopback_only=loopback_only)
