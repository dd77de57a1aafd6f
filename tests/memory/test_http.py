"""Streamable HTTP: many clients share one server process; Origin is checked; updates are pushed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from beamish.memory import RESOURCE_URI, KnowledgeGraph, serve_http

pytestmark = pytest.mark.timeout(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_server(memory: Path) -> AsyncIterator[str]:
    port = _free_port()
    async with KnowledgeGraph(memory) as graph, anyio.create_task_group() as tg:
        started = anyio.Event()
        tg.start_soon(lambda: serve_http(graph, "127.0.0.1", port, "/mcp", started=started))
        with anyio.fail_after(10):
            await started.wait()
        yield f"http://127.0.0.1:{port}/mcp"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def session(url: str, on_message: Any = None) -> AsyncIterator[ClientSession]:
    async with (
        streamable_http_client(url) as streams,
        ClientSession(*streams, message_handler=on_message) as s,
    ):
        await s.initialize()
        yield s


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the reference's (2025) way
async def test_two_http_clients_share_one_graph_and_subscribers_hear_of_changes(tmp_path: Path) -> None:
    updates: list[str] = []
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            updates.append(message.params.uri)
            heard.set()

    async with (
        running_server(tmp_path / "memory.jsonl") as url,
        session(url, on_message) as listener,
        session(url) as writer,
    ):
        await listener.subscribe_resource(RESOURCE_URI)
        created = await writer.call_tool(
            "create_entities", {"entities": [{"name": "n", "entityType": "t", "observations": []}]}
        )
        assert not created.is_error
        with anyio.fail_after(10):
            await heard.wait()
        assert updates == [RESOURCE_URI]
        graph = await listener.call_tool("read_graph", {})
        assert [e["name"] for e in graph.structured_content["entities"]] == ["n"]
    assert (
        tmp_path / "memory.jsonl"
    ).read_text() == '{"type":"entity","name":"n","entityType":"t","observations":[]}'


async def test_a_foreign_origin_is_refused_and_loopback_origins_are_served(tmp_path: Path) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with running_server(tmp_path / "memory.jsonl") as url, httpx.AsyncClient() as http:
        evil = await http.post(url, json=init, headers={**headers, "Origin": "http://evil.example"})
        assert evil.status_code == 403
        local = await http.post(url, json=init, headers={**headers, "Origin": url.rsplit("/", 1)[0]})
        assert local.status_code == 200
        rebinding = await http.post(url, json=init, headers={**headers, "Host": "evil.example"})
        assert rebinding.status_code == 421
