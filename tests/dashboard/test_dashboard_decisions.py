"""Deciding gates over HTTP: the token-guarded API, and signed, expiring, single-use links."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from beamish.agent._gates import GatePolicy, get_gate, open_gate
from beamish.agent._links import sign_link
from beamish.company._approvals import ApprovalsMixin
from beamish.dashboard import create_app
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(20)
TOKEN, SECRET = "dash-token", "link-secret"


class StoreDecisions(ApprovalsMixin):
    """The company's approvals API over a bare store (no node: nothing to wake)."""

    def __init__(self, store: Any) -> None:
        self.store, self.node = store, None


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    await store.create_run("marketing", "launch", run_id="r1")
    epoch = await store.claim_run("r1", "test")
    gate = await open_gate(
        store, run_id="r1", epoch=epoch, seq=1, kind="approval", tool="post",
        args={"text": "hi", "api_key": "sk-ant-api03-" + "x" * 40}, policy=GatePolicy(approvers=("alice",)),
    )  # fmt: skip
    yield store, gate.gate_id
    await store.close()


def client(store: Any, **kw: Any) -> httpx.AsyncClient:
    app = create_app(StoreDecisions(store), loopback_only=True, **kw)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765")


async def test_the_api_lists_and_decides_with_the_token(gated: tuple[Any, str]) -> None:
    store, gate_id = gated
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with client(store, token=TOKEN) as c:
        assert (await c.get("/api/approvals")).status_code == 401
        (listed,) = (await c.get("/api/approvals", headers=auth)).json()
        assert listed["gate_id"] == gate_id and "sk-ant" not in str(listed["args"])
        refused = await c.post(f"/api/approvals/{gate_id}/approve", json={"by": "mallory"}, headers=auth)
        assert refused.status_code == 409 and "may not decide" in refused.json()["error"]
        r = await c.post(f"/api/approvals/{gate_id}/deny", json={"by": "alice", "note": "no"}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "denied"
    assert (await store.get_run("r1")).status == "queued"


async def test_a_signed_link_decides_once_and_a_get_decides_nothing(gated: tuple[Any, str]) -> None:
    store, gate_id = gated
    token = sign_link(SECRET, gate_id, "approve", by="alice", expires_at=time.time() + 600)
    async with client(store, token=TOKEN, link_secret=SECRET) as c:
        shown = await c.get(f"/links/{token}")
        assert shown.status_code == 200 and "post(" in shown.text
        assert (await get_gate(store, gate_id)).status == "pending"
        first = await c.post(f"/links/{token}")
        again = await c.post(f"/links/{token}")
    assert first.status_code == 200 and "Approved by alice" in first.text
    assert 'name="viewport"' in shown.text  # opened from a notification, often on a phone
    assert again.status_code == 409 and "already decided" in again.text
    gate = await get_gate(store, gate_id)
    assert (gate.status, gate.decided_by) == ("approved", "alice")


async def test_a_deny_link_says_denied(gated: tuple[Any, str]) -> None:
    store, gate_id = gated
    token = sign_link(SECRET, gate_id, "deny", by="alice", expires_at=time.time() + 600)
    async with client(store, token=TOKEN, link_secret=SECRET) as c:
        r = await c.post(f"/links/{token}")
    assert r.status_code == 200 and "Denied by alice" in r.text and "denyd" not in r.text


@pytest.mark.parametrize(
    ("secret", "expires_in", "why"),
    [("another-secret", 600, "not valid"), (SECRET, -1, "expired")],
)
async def test_a_forged_or_expired_link_is_refused(
    gated: tuple[Any, str], secret: str, expires_in: float, why: str
) -> None:
    store, gate_id = gated
    token = sign_link(secret, gate_id, "approve", by="alice", expires_at=time.time() + expires_in)
    async with client(store, token=TOKEN, link_secret=SECRET) as c:
        r = await c.post(f"/links/{token}")
    assert r.status_code == 403 and why in r.text
    assert (await get_gate(store, gate_id)).status == "pending"
