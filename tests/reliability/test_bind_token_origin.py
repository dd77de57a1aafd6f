"""Every server binds loopback by default; beyond loopback a token is required and compared in
constant time; the dashboard and the memory server's HTTP transport refuse foreign Origins and
Hosts (DNS rebinding)."""

from __future__ import annotations

import hmac
import inspect
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from beamish import SpecError
from beamish._net import is_loopback
from beamish.company._memory_service import MemoryService
from beamish.company._schema import DashboardSection, MemorySection
from beamish.dashboard import DashboardServer, create_app
from beamish.memory import KnowledgeGraph, http_app, serve_http
from fuzz._sources import SmallCompany

pytestmark = pytest.mark.timeout(30)

TOKEN = "correct-horse-battery-staple"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def _default(fn: Any, name: str) -> Any:
    return inspect.signature(fn).parameters[name].default


def test_every_server_binds_loopback_by_default() -> None:
    assert _default(DashboardServer.__init__, "host") == "127.0.0.1"
    assert _default(serve_http, "host") == "127.0.0.1"
    assert _default(http_app, "host") == "127.0.0.1"
    assert _default(MemoryService.init, "host") == "127.0.0.1"
    assert MemorySection().host == "127.0.0.1"
    assert DashboardSection().host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_the_dashboard_refuses_a_non_loopback_bind_without_a_token(host: str) -> None:
    with pytest.raises(SpecError, match="needs a token"):
        DashboardServer(SmallCompany(), host=host, port=0)
    DashboardServer(SmallCompany(), host=host, port=0, token=TOKEN)  # with one it is allowed


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5"])
def test_the_memory_server_refuses_a_non_loopback_bind_without_a_token(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEAMISH_MEMORY_TOKEN", raising=False)
    graph = KnowledgeGraph(tmp_path / "m.jsonl", report_repairs=False)
    with pytest.raises(SpecError, match="needs a token"):
        http_app(graph, host=host)
    http_app(graph, host=host, token=TOKEN)


def _dashboard(token: str | None = None, loopback_only: bool = True) -> TestClient:
    app = create_app(SmallCompany(), token=token, loopback_only=loopback_only)
    return TestClient(app, base_url="http://127.0.0.1:8765")


def test_the_dashboard_wants_its_token_from_header_cookie_or_query() -> None:
    client = _dashboard(TOKEN)
    assert client.get("/api/tree").status_code == 401
    assert client.get("/api/tree", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/tree", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert client.get("/api/tree", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/tree", params={"token": TOKEN}).status_code == 200
    client.cookies.set("beamish_dashboard", TOKEN)
    assert client.get("/api/tree").status_code == 200


def test_the_dashboard_compares_tokens_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import beamish.dashboard._app as app_module

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    _dashboard(TOKEN).get("/api/tree", headers={"authorization": "Bearer nope"})
    assert seen and all(expected == TOKEN.encode() for _, expected in seen)


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8765"]
)
def test_the_dashboard_refuses_a_foreign_origin(origin: str) -> None:
    response = _dashboard().post("/api/agents/ceo/resume", headers={"origin": origin})
    assert response.status_code == 403


def test_the_dashboard_serves_its_own_origin() -> None:
    response = _dashboard().post("/api/agents/ceo/resume", headers={"origin": "http://127.0.0.1:8765"})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "192.168.1.5:8765"])
def test_the_loopback_dashboard_refuses_a_foreign_host_header(host: str) -> None:
    assert _dashboard().get("/api/tree", headers={"host": host}).status_code == 403


@pytest.fixture
def memory_graph(tmp_path: Path) -> KnowledgeGraph:
    return KnowledgeGraph(tmp_path / "m.jsonl", report_repairs=False)


@pytest.mark.parametrize("origin", ["http://evil.example", "http://attacker.localhost.example:80"])
def test_the_memory_server_refuses_a_foreign_origin(memory_graph: KnowledgeGraph, origin: str) -> None:
    with TestClient(http_app(memory_graph), base_url="http://127.0.0.1:8000") as client:
        response = client.post("/mcp", headers={**MCP_HEADERS, "origin": origin}, json=INIT)
        assert response.status_code == 403
        ok = client.post("/mcp", headers={**MCP_HEADERS, "origin": "http://127.0.0.1:8000"}, json=INIT)
        assert ok.status_code == 200


def test_the_memory_server_refuses_a_foreign_host_header(memory_graph: KnowledgeGraph) -> None:
    with TestClient(http_app(memory_graph), base_url="http://127.0.0.1:8000") as client:
        response = client.post("/mcp", headers={**MCP_HEADERS, "host": "evil.example:8000"}, json=INIT)
        assert response.status_code in (403, 421)


def test_the_memory_server_beyond_loopback_wants_its_bearer_token(memory_graph: KnowledgeGraph) -> None:
    app = http_app(memory_graph, host="10.0.0.5", token=TOKEN)
    with TestClient(app, base_url="http://10.0.0.5:8000") as client:
        assert client.post("/mcp", headers=MCP_HEADERS, json=INIT).status_code == 401
        wrong = {**MCP_HEADERS, "authorization": "Bearer nope"}
        assert client.post("/mcp", headers=wrong, json=INIT).status_code == 401
        right = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        assert client.post("/mcp", headers=right, json=INIT).status_code == 200


def test_the_memory_token_can_come_from_the_environment(
    memory_graph: KnowledgeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEAMISH_MEMORY_TOKEN", TOKEN)
    with TestClient(http_app(memory_graph, host="0.0.0.0"), base_url="http://0.0.0.0:8000") as client:
        assert client.post("/mcp", headers=MCP_HEADERS, json=INIT).status_code == 401
        right = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        assert client.post("/mcp", headers=right, json=INIT).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        *[(h, True) for h in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LOCALHOST.")],
        *[(h, True) for h in ("::1", "[::1]", "::ffff:127.0.0.2")],
        *[(h, False) for h in ("0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "example.com", "")],
        *[(h, False) for h in ("localhost.example", "127.0.0.1.nip.io", "::ffff:10.0.0.5")],
    ],
)
def test_one_loopback_check_knows_all_of_127_slash_8_ipv6_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_both_servers_serve_any_loopback_address_without_a_token(
    host: str, memory_graph: KnowledgeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard and the memory server agree: 127.0.0.2 is this machine, like 127.0.0.1."""
    monkeypatch.delenv("BEAMISH_MEMORY_TOKEN", raising=False)
    base = f"http://{'[::1]' if host == '::1' else host}:8000"
    DashboardServer(SmallCompany(), host=host, port=0)  # no token needed
    dashboard = create_app(SmallCompany(), loopback_only=is_loopback(host))
    assert TestClient(dashboard, base_url=base).get("/api/tree").status_code == 200
    with TestClient(http_app(memory_graph, host=host), base_url=base) as client:
        assert client.post("/mcp", headers=MCP_HEADERS, json=INIT).status_code == 200
        own_origin = {**MCP_HEADERS, "origin": base}
        assert client.post("/mcp", headers=own_origin, json=INIT).status_code == 200
        foreign = {**MCP_HEADERS, "host": "evil.example:8000"}
        assert client.post("/mcp", headers=foreign, json=INIT).status_code in (403, 421)
