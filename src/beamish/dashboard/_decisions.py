"""The dashboard's approval routes: list and decide gates (behind the dashboard's token), and the
signed links a notification carries (the signature is their credential, so they skip the token).

A link's GET only shows the call and a button; the POST decides. A mail scanner or chat preview
that fetches the link therefore decides nothing.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from beamish._exceptions import BeamishError
from beamish._redact import redact
from beamish.agent._links import verify_link
from beamish.dashboard._html import plain_page

LINK_PREFIX = "/links/"
_DECISIONS = ("approve", "deny", "edit", "answer")


def decision_routes(source: Any, link_secret: str | None) -> list[Route]:
    """Routes over ``source`` (a company: ``approvals``, ``gate``, ``approve`` …)."""

    async def listing(request: Request) -> Response:
        if not hasattr(source, "approvals"):
            return JSONResponse([])  # a source without gates has none waiting
        gates = await source.approvals()
        return JSONResponse(redact([g.to_json() for g in gates]))

    async def decide(request: Request) -> Response:
        gate_id, decision = request.path_params["gate"], request.path_params["decision"]
        if decision not in _DECISIONS:
            return JSONResponse({"error": f"expected one of {list(_DECISIONS)}, got {decision!r}"}, 404)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": 'expected a JSON body like {"by": "alice", "note": "…"}'}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("by"), str):
            return JSONResponse({"error": 'expected a JSON body with "by" (who decides)'}, 400)
        try:
            gate = await _apply(source, gate_id, decision, body)
        except BeamishError as exc:
            return JSONResponse({"error": redact(str(exc))}, 409)
        return JSONResponse(redact(gate.to_json()))

    async def link(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            claim = verify_link(link_secret or "", token, time.time())
            gate = await source.gate(claim.gate_id)
        except BeamishError as exc:
            return _said("This link does not work", str(exc), 403)
        call = html.escape(f"{gate.tool}({json.dumps(redact(gate.args), ensure_ascii=False)})")
        about = f"<h1>{html.escape(gate.agent)} asks to call</h1><pre>{call}</pre>"
        if request.method == "GET":
            return HTMLResponse(
                plain_page(
                    "Decide",
                    f"{about}<form method='post'><button>{html.escape(claim.decision)} as "
                    f"{html.escape(claim.by)}</button></form>",
                )
            )
        try:
            await _apply(source, claim.gate_id, claim.decision, {"by": claim.by})
        except BeamishError as exc:
            return _said("Nothing was changed", str(exc), 409)
        done = _DONE.get(claim.decision, claim.decision)
        return HTMLResponse(
            plain_page(done, f"{about}<p>{done} by {html.escape(claim.by)}; its run resumes.</p>")
        )

    return [
        Route("/api/approvals", listing),
        Route("/api/approvals/{gate}/{decision}", decide, methods=["POST"]),
        Route(LINK_PREFIX + "{token}", link, methods=["GET", "POST"]),
    ]


#: What a decision link's page says once it decided.
_DONE = {"approve": "Approved", "deny": "Denied", "edit": "Edited", "answer": "Answered"}


def _said(title: str, why: str, status: int) -> Response:
    return HTMLResponse(plain_page(title, f"<h1>{title}</h1><p>{html.escape(redact(why))}</p>"), status)


async def _apply(source: Any, gate_id: str, decision: str, body: dict[str, Any]) -> Any:
    by, note = body["by"], body.get("note")
    if decision == "approve":
        return await source.approve(gate_id, by=by, note=note)
    if decision == "deny":
        return await source.deny(gate_id, by=by, note=note)
    if decision == "edit":
        return await source.edit(gate_id, body.get("args"), by=by, note=note)
    return await source.answer(gate_id, str(body.get("answer", "")), by=by)
