"""Paging (off by default): big graphs come in pages, every entity and relation exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client._memory import InMemoryTransport
from mcp.client.session import ClientSession

from beamish import SpecError
from beamish.memory import KnowledgeGraph, build_server
from beamish.memory._schema import tool_definitions

pytestmark = pytest.mark.timeout(20)


@asynccontextmanager
async def client(graph: KnowledgeGraph, page_size: int | None) -> AsyncIterator[ClientSession]:
    async with (
        InMemoryTransport(build_server(graph, page_size=page_size)) as streams,
        ClientSession(*streams) as s,
    ):
        await s.initialize()
        yield s


async def _all_pages(session: ClientSession, tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    pages = []
    cursor = None
    while True:
        args = dict(arguments) if cursor is None else {**arguments, "cursor": cursor}
        result = await session.call_tool(tool, args)
        assert not result.is_error, result
        pages.append(result.structured_content)
        cursor = result.structured_content.get("nextCursor")
        if cursor is None:
            return pages


async def test_read_graph_in_pages_returns_everything_once(tmp_path: Path) -> None:
    async with KnowledgeGraph(tmp_path / "m.jsonl") as graph:
        await graph.create_entities(
            [{"name": f"e{i}", "entityType": "t", "observations": []} for i in range(7)]
        )
        relations = [{"from": f"e{i}", "to": f"e{(i + 3) % 7}", "relationType": "r"} for i in range(7)]
        relations.append({"from": "ghost", "to": "nobody", "relationType": "dangling"})
        await graph.create_relations(relations)
        full = await graph.read_graph()
        async with client(graph, page_size=3) as session:
            pages = await _all_pages(session, "read_graph", {})
            assert [len(p["entities"]) for p in pages] == [3, 3, 1]
            assert [e for p in pages for e in p["entities"]] == full["entities"]
            sent = [r for p in pages for r in p["relations"]]
            assert sorted(map(str, sent)) == sorted(map(str, full["relations"]))
            assert len(sent) == len(full["relations"])
            found = await _all_pages(session, "search_nodes", {"query": "E"})
            assert [e["name"] for p in found for e in p["entities"]] == [f"e{i}" for i in range(7)]
            bad = await session.call_tool("read_graph", {"cursor": "nope"})
            assert bad.is_error
            tools = (await session.list_tools()).tools
            read = next(t for t in tools if t.name == "read_graph")
            assert "cursor" in read.input_schema["properties"]


async def test_paging_is_off_by_default_and_the_tools_are_the_reference_s(tmp_path: Path) -> None:
    async with KnowledgeGraph(tmp_path / "m.jsonl") as graph, client(graph, page_size=None) as session:
        tools = (await session.list_tools()).tools
        assert [
            t.model_dump(by_alias=True, exclude_none=True, mode="json")["inputSchema"] for t in tools
        ] == [t["inputSchema"] for t in tool_definitions()]
    with pytest.raises(SpecError, match="page_size"):
        build_server(graph, page_size=0)
