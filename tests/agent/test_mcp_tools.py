"""MCP servers as tool sources: real stdio server processes through the official client."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from beamish import AgentSpec, SpecError, ToolError
from beamish.agent._mcp_tools import McpServer
from beamish.agent._tools import ToolContext
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from ._scripts import call, write_script

pytestmark = pytest.mark.timeout(60)

SERVER = McpServer(
    name="calc", command=[sys.executable, str(Path(__file__).with_name("fixture_mcp_server.py"))]
)


def _ctx() -> ToolContext:
    return ToolContext(run_id="r", agent="a", tool="add", seq=0)


async def test_the_servers_tools_are_listed_with_their_schema_and_called() -> None:
    source = await SERVER.open("calc-user")
    try:
        tools = {t.name: t for t in source.tools()}
        assert set(tools) == {"add", "die"}
        schema = tools["add"].schema()
        assert schema.parameters["required"] == ["a", "b"]
        assert tools["add"].effect == "idempotent"
        text = await tools["add"].invoke({"a": 2, "b": 3}, _ctx())
        assert text.startswith("5 (pid ")
    finally:
        await source.close()


async def test_a_dead_stdio_server_is_started_again_on_the_next_call_within_its_bound() -> None:
    # effect "once": a call that met a dead server is not repeated on the new one
    server = McpServer(
        name="calc", command=SERVER.command, effect="once", max_restarts=1, restart_window_s=60
    )
    source = await server.open("calc-user")
    try:
        tools = {t.name: t for t in source.tools()}
        first = await tools["add"].invoke({"a": 1, "b": 1}, _ctx())
        with pytest.raises(ToolError):
            await tools["die"].invoke({}, _ctx())
        second = await tools["add"].invoke({"a": 1, "b": 1}, _ctx())
        assert first.split("pid ")[1] != second.split("pid ")[1], "a new server process answered"
        assert source.starts == 2
        with pytest.raises(ToolError):
            await tools["die"].invoke({}, _ctx())
        with pytest.raises(ToolError, match="died 1 times within 60"):
            await tools["add"].invoke({"a": 1, "b": 1}, _ctx())
    finally:
        await source.close()


async def test_an_agent_uses_mcp_tools_and_only_those_it_was_given(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "m",
        [
            {"tool_calls": [call("add", a=20, b=22)]},
            {"tool_calls": [call("die")]},
            {"text": "The sum: {last_tool}"},
        ],
    )
    only_add = McpServer(name="calc", command=SERVER.command, only=["add"])
    spec = AgentSpec(
        name="mathy", instructions="Add.", model=f"scripted:{script}", tools=[only_add], isolation="process"
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        result = await node.result(await node.submit("mathy", "sum"), timeout=30)
    assert result.status == "succeeded"
    assert "tool 'die' is not available to agent 'mathy' (allowed: add)" in str(result.output)
    async with await open_store(url) as store:
        steps = await store.steps(result.run_id)
    assert steps[1].messages is not None and steps[1].messages[0]["text"].startswith("42 (pid ")


def test_mcp_server_specs_are_validated_and_round_trip() -> None:
    with pytest.raises(SpecError, match="exactly one of command"):
        McpServer(name="x")
    with pytest.raises(SpecError, match="must start with http"):
        McpServer(name="x", url="ftp://nope")
    http = McpServer(name="mem", url="http://127.0.0.1:8765/mcp", effect="read")
    assert McpServer.from_json(http.to_json()) == http
    assert McpServer.from_json(SERVER.to_json()) == SERVER


async def test_an_http_mcp_server_is_reached_over_streamable_http(tmp_path: Path) -> None:
    from beamish._net import free_port
    from beamish.company._memory_service import MemoryService

    port = free_port()
    async with Node() as node:
        await node.spawn(MemoryService, str(tmp_path / "memory.jsonl"), port=port)
        source = await McpServer(name="memory", url=f"http://127.0.0.1:{port}/mcp").open("cfo")
        try:
            tools = {t.name: t for t in source.tools()}
            assert {"create_entities", "read_graph", "search_nodes"} <= set(tools)
            assert tools["read_graph"].effect == "read", "readOnlyHint makes a tool a read"
            assert tools["create_entities"].effect != "read"
            entity = {"name": "Q3", "entityType": "quarter", "observations": ["revenue up"]}
            await tools["create_entities"].invoke({"entities": [entity]}, _ctx())
            found = await tools["search_nodes"].invoke({"query": "revenue"}, _ctx())
        finally:
            await source.close()
    assert "Q3" in found
