"""The dashboard over HTTP: tree, live events, resume, and who may ask."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from _dashboard_company import CompanySource

from beamish import SpecError
from beamish._events import Event
from beamish.dashboard import DashboardServer, create_app

pytestmark = pytest.mark.timeout(20)


def client(
    source: CompanySource, token: str | None = None, host: str = "127.0.0.1:8765"
) -> httpx.AsyncClient:
    app = create_app(source, token=token, loopback_only=True)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def test_the_page_is_served_and_self_contained(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.get("/")
    assert r.status_code == 200
    assert "<title>beamish</title>" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # no external assets


async def test_the_tree_carries_state_restarts_spend_and_protection(source: CompanySource) -> None:
    async with client(source) as c:
        tree = (await c.get("/api/tree")).json()
    finance = tree["children"][1]
    assert finance["strategy"] == "rest_for_one"
    cfo, accountant = finance["children"]
    assert (cfo["id"], cfo["state"], cfo["spent_usd"], cfo["cap_usd"]) == ("cfo", "paused", 3.0, 3.0)
    assert (accountant["restarts"], accountant["last_exit"]) == (2, "killed")
    assert (cfo["unprotected"], accountant["unprotected"]) == (None, "watchdog=None")


async def test_resume_un_pauses_the_agent(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.post("/api/agents/cfo/resume")
        assert r.json() == {"resumed": "cfo"}
        tree = (await c.get("/api/tree")).json()
    assert tree["children"][1]["children"][0]["state"] == "running"
    assert source.resumed == ["cfo"]


async def test_resuming_an_unknown_agent_is_a_404_naming_it(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.post("/api/agents/nobody/resume")
    assert r.status_code == 404
    assert r.json() == {"error": "no agent named 'nobody'"}


async def test_a_cross_site_post_is_refused_and_nothing_is_resumed(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.post("/api/agents/cfo/resume", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert source.resumed == []


async def test_a_same_origin_post_is_accepted(source: CompanySource) -> None:
    async with client(source) as c:
        r = await c.post("/api/agents/cfo/resume", headers={"Origin": "http://127.0.0.1:8765"})
    assert r.status_code == 200


async def test_a_foreign_host_header_on_loopback_is_refused_against_dns_rebinding(
    source: CompanySource,
) -> None:
    async with client(source, host="rebind.example:8765") as c:
        r = await c.get("/api/tree")
    assert r.status_code == 403


@pytest.mark.parametrize("how", ["header", "query", "cookie"])
async def test_with_a_token_every_way_of_presenting_it_works(source: CompanySource, how: str) -> None:
    async with client(source, token="s3cret-token") as c:
        assert (await c.get("/api/tree")).status_code == 401
        if how == "header":
            r = await c.get("/api/tree", headers={"Authorization": "Bearer s3cret-token"})
        elif how == "query":
            r = await c.get("/api/tree?token=s3cret-token")
        else:
            await c.get("/?token=s3cret-token")  # the page sets an HttpOnly cookie
            r = await c.get("/api/tree")
    assert r.status_code == 200


async def test_a_wrong_token_is_refused(source: CompanySource) -> None:
    async with client(source, token="s3cret-token") as c:
        r = await c.get("/api/tree", headers={"Authorization": "Bearer s3cret-tokem"})
    assert r.status_code == 401


def test_a_non_loopback_bind_without_a_token_is_refused() -> None:
    with pytest.raises(SpecError, match=r"binding to '0\.0\.0\.0' \(not loopback\) needs a token"):
        DashboardServer(CompanySource(), host="0.0.0.0", port=0)


async def test_events_arrive_live_over_sse_on_a_real_socket(source: CompanySource) -> None:
    source.hub.publish(Event("child.started", "ceo", {}))
    async with (
        DashboardServer(source, port=0) as server,
        httpx.AsyncClient(base_url=server.url) as c,
        c.stream("GET", "/api/events") as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()

        async def next_event() -> dict[str, object]:
            async for line in lines:
                if line.startswith("data: "):
                    return dict(json.loads(line[6:]))
            raise AssertionError("stream ended")

        first = await asyncio.wait_for(next_event(), 5)
        assert (first["kind"], first["subject"]) == ("child.started", "ceo")
        source.hub.publish(Event("child.exited", "accountant", {"reason": {"v": 1, "kind": "killed"}}))
        live = await asyncio.wait_for(next_event(), 5)
        assert (live["kind"], live["subject"]) == ("child.exited", "accountant")


async def test_secrets_in_event_data_are_redacted_on_the_wire(source: CompanySource) -> None:
    source.hub.publish(Event("run.started", "ceo", {"task": "use sk-ant-api03-SECRETSECRETSECRET1234"}))
    async with (
        DashboardServer(source, port=0) as server,
        httpx.AsyncClient(base_url=server.url) as c,
        c.stream("GET", "/api/events") as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                assert "SECRETSECRET" not in line
                assert "[redacted]" in line
                break


async def test_a_resume_the_source_cannot_do_is_a_409_saying_why(source: CompanySource) -> None:
    async def refuse(agent: str) -> None:
        raise RuntimeError("no node is running this company")

    source.resume = refuse  # type: ignore[method-assign]
    async with client(source) as c:
        r = await c.post("/api/agents/cfo/resume")
    assert r.status_code == 409
    assert r.json() == {"error": "no node is running this company"}


@pytest.mark.timeout(10)
async def test_a_port_in_use_fails_the_start_with_an_error_not_a_process_exit(source: CompanySource) -> None:
    import socket

    from beamish import BeamishError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = DashboardServer(source, port=port)
        with pytest.raises(BeamishError) as refused:
            await server.start()
    assert str(refused.value) == (
        f"dashboard: cannot listen on 127.0.0.1:{port}: the port is already in use (another process "
        "listens on it); stop that process, or choose another port for it"
    )
