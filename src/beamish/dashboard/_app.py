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
import html
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from beamish._exceptions import BeamishError
from beamish._net import is_loopback
from beamish._redact import redact
from beamish.company._control import ControlUnavailable
from beamish.company._status import DashboardSource, UnknownAgent
from beamish.dashboard._decisions import LINK_PREFIX, decision_routes
from beamish.dashboard._html import event_summary, layout
from beamish.dashboard._page import overview_page
from beamish.dashboard._pages import NO_STORE, charts_body, company_body, events_body, run_body, runs_body

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


#: What a source may raise when the node behind it is gone: the page says so instead of a 500.
_UNREACHABLE = (ControlUnavailable, OSError, TimeoutError, RuntimeError, BeamishError)


def create_app(
    source: DashboardSource,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    link_secret: str | None = None,
    store: Any = None,
) -> ASGIApp:
    """The dashboard as an ASGI app (served by the node, or mounted by the user). ``link_secret``
    signs decision links (default: the token); with neither, links are refused. ``store`` (default:
    the source's own ``store``) is what the runs, events, charts and company pages read."""

    def current_store() -> Any:
        return store if store is not None else getattr(source, "store", None)

    async def node_status() -> tuple[bool, str | None]:
        probe = getattr(source, "node_status", None)
        if probe is None:
            return True, None
        try:
            live, detail = await probe()
        except _UNREACHABLE as exc:
            return False, redact(str(exc))
        return bool(live), detail

    def clock_note() -> str | None:
        note = getattr(source, "clock_note", None)
        return note if isinstance(note, str) else None

    def with_cookie(request: Request, response: Response) -> Response:
        if token is not None and request.query_params.get("token"):
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def page(request: Request) -> Response:
        return with_cookie(request, HTMLResponse(overview_page(clock_note())))

    async def status(request: Request) -> Response:
        live, detail = await node_status()
        return JSONResponse({"live": live, "detail": detail, "clock_note": clock_note()})

    async def tree(request: Request) -> Response:
        try:
            snapshot = await source.tree()
        except _UNREACHABLE as exc:
            return JSONResponse({"error": f"the node did not answer: {redact(str(exc))}"}, status_code=503)
        return JSONResponse(redact(snapshot.to_json()))

    async def events(request: Request) -> Response:
        raw = request.query_params.get("replay", "50")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
            return JSONResponse({"error": f"replay must be a whole number of events, got {raw[:40]!r}"}, 400)
        replay = int(raw)

        async def stream() -> AsyncIterator[str]:
            yield ": connected\n\n"
            try:
                async for event in source.events(replay=replay):
                    if await request.is_disconnected():
                        break
                    data = redact(event.to_json())
                    data["summary"] = event_summary(event)
                    yield f"event: beamish\ndata: {json.dumps(data, default=str)}\n\n"
            except _UNREACHABLE:
                return  # the node went away: the browser reconnects, and the source picks again

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def resume(request: Request) -> Response:
        agent = request.path_params["agent"]
        try:
            await source.resume(agent)
        except UnknownAgent:
            return JSONResponse({"error": f"no agent named {agent!r}"}, status_code=404)
        except _UNREACHABLE as exc:  # e.g. no node runs, or it is not paused: nothing changed
            return JSONResponse({"error": redact(str(exc))}, status_code=409)
        return JSONResponse({"resumed": agent})

    async def render(
        request: Request,
        title: str,
        active: str,
        body: Callable[[Any], Awaitable[str | None]],
        missing: str | None = None,
    ) -> Response:
        live, detail = await node_status()
        found = current_store()
        code = 200
        if found is None:
            content: str | None = NO_STORE
        else:
            try:
                content = await body(found)
            except BeamishError as exc:  # the store itself is down: say so, the banner script retries
                content, code = (
                    f'<p class="banner">The store did not answer: {html.escape(redact(str(exc)))}</p>',
                    503,
                )
        if content is None:
            back = '<p><a href="/runs">All runs</a> · <a href="/">Overview</a></p>'
            content, code = f"<h1>Not found</h1><p>{html.escape(missing or title)}</p>{back}", 404
        shown = layout(title, active, content, live=live, detail=detail, clock_note=clock_note())
        return with_cookie(request, HTMLResponse(shown, status_code=code))

    async def runs_html(request: Request) -> Response:
        q = request.query_params
        agent, status, page_no = q.get("agent") or None, q.get("status") or None, _int(q.get("page"), 1)
        return await render(
            request, "Runs", "/runs", lambda st: runs_body(st, agent=agent, status=status, page=page_no)
        )

    async def run_html(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return await render(
            request,
            f"Run {run_id}",
            "/runs",
            lambda st: run_body(st, run_id),
            missing=f"No run has the id {run_id!r} in this store.",
        )

    async def events_html(request: Request) -> Response:
        q = request.query_params
        before = _int(q.get("before"), 0) or None
        kind, agent = q.get("kind") or None, q.get("agent") or None
        return await render(
            request, "Events", "/events", lambda st: events_body(st, kind=kind, agent=agent, before=before)
        )

    async def charts_html(request: Request) -> Response:
        return await render(request, "Charts", "/charts", charts_body)

    async def company_html(request: Request) -> Response:
        agents: list[tuple[str, float | None, float | None]] = []
        try:
            snapshot = await source.tree()
            agents = [(n.id, n.spent_usd, n.cap_usd) for n in snapshot.walk() if n.type == "agent"]
        except _UNREACHABLE:
            pass  # the tree is the node's; the rest of the page is the store's
        note = clock_note()
        return await render(request, "Company", "/company", lambda st: company_body(st, agents, note))

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/runs", runs_html),
            Route("/runs/{run_id:path}", run_html),
            Route("/events", events_html),
            Route("/charts", charts_html),
            Route("/company", company_html),
            Route("/api/status", status),
            Route("/api/tree", tree),
            Route("/api/events", events),
            Route("/api/agents/{agent}/resume", resume, methods=["POST"]),
            *decision_routes(source, link_secret or token),
        ]
    )
    return _Guard(app, token=token, loopback_only=loopback_only)


def _int(raw: str | None, default: int) -> int:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return default
    return int(raw)
