"""The agents' memory tools speak MCP to the shared server: same results, same error texts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beamish import BeamishError, ToolError
from beamish._net import free_port, listen
from beamish.company import _memory_tools as mt
from beamish.company._host import _memory_unready
from beamish.company._memory_service import MemoryService, ServeGate
from beamish.runtime import ChildSpec, Node, SupervisorSpec

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Node, object, Path]]:
    port = free_port()
    monkeypatch.setenv(mt.URL_ENV, f"http://127.0.0.1:{port}/mcp")
    monkeypatch.setattr(mt, "_CLIENT", None)
    file = tmp_path / "memory.jsonl"
    async with Node() as node:
        ref = await node.spawn(MemoryService, str(file), port=port)
        yield node, ref, file


async def call(tool: object, **arguments: object) -> str:
    return await asyncio.to_thread(tool, **arguments)  # type: ignore[arg-type]  # tools run on worker threads


async def test_writes_reach_the_shared_file_and_reads_see_them(server: tuple[Node, object, Path]) -> None:
    _node, _ref, file = server
    created = await call(
        mt.create_entities,
        entities=[{"name": "budget", "entityType": "finance", "observations": ["cap $300"]}],
    )
    assert json.loads(created) == [{"name": "budget", "entityType": "finance", "observations": ["cap $300"]}]
    await call(
        mt.add_observations, observations=[{"entityName": "budget", "contents": ["approved tracking"]}]
    )
    await call(mt.create_relations, relations=[{"from": "cfo", "to": "budget", "relationType": "owns"}])
    found = json.loads(await call(mt.search_nodes, query="TRACKING"))
    assert found["entities"][0]["observations"] == ["cap $300", "approved tracking"]
    graph = json.loads(await call(mt.read_graph))
    assert graph["relations"] == [{"from": "cfo", "to": "budget", "relationType": "owns"}]
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert lines[0]["type"] == "entity" and lines[1]["type"] == "relation"


async def test_the_servers_error_text_reaches_the_model_as_a_tool_error(
    server: tuple[Node, object, Path],
) -> None:
    with pytest.raises(ToolError, match=r"^Entity with name nobody not found$"):
        await call(mt.add_observations, observations=[{"entityName": "nobody", "contents": ["x"]}])


async def test_a_restarted_server_gets_a_new_session_transparently(server: tuple[Node, object, Path]) -> None:
    node, ref, file = server
    await call(mt.create_entities, entities=[{"name": "a", "entityType": "t", "observations": []}])
    first_session = mt._CLIENT.session if mt._CLIENT else None
    await ref.stop()  # type: ignore[attr-defined]
    port = int(str(mt.os.environ[mt.URL_ENV]).rsplit(":", 1)[1].split("/")[0])
    await node.spawn(MemoryService, str(file), port=port)
    opened = json.loads(await call(mt.open_nodes, names=["a"]))
    assert opened["entities"][0]["name"] == "a"
    assert mt._CLIENT is not None and mt._CLIENT.session != first_session


async def test_without_a_memory_server_the_tool_says_so() -> None:
    import os

    saved = os.environ.pop(mt.URL_ENV, None)
    try:
        with pytest.raises(ToolError, match="BEAMISH_MEMORY_URL is not set"):
            await call(mt.read_graph)
    finally:
        if saved is not None:
            os.environ[mt.URL_ENV] = saved


async def test_a_gated_server_holds_its_port_at_once_and_serves_when_the_gate_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a company the agents start first: the port is bound (the URL is good) and the slow start
    waits for the gate, so /readyz says 'starting' meanwhile and 'serving' after."""
    port = free_port()
    monkeypatch.setenv(mt.URL_ENV, f"http://127.0.0.1:{port}/mcp")
    monkeypatch.setattr(mt, "_CLIENT", None)
    gate = ServeGate()
    async with Node() as node:
        ref = await node.spawn(MemoryService, str(tmp_path / "memory.jsonl"), port=port, gate=gate)
        assert await ref.call(("url",)) == f"http://127.0.0.1:{port}/mcp"
        assert await ref.call(("serving",)) is False
        with pytest.raises(BeamishError, match="the port is already in use"):
            listen("127.0.0.1", port, "another server", "pick another port")
        gate.open()
        assert json.loads(await call(mt.read_graph)) == {"entities": [], "relations": []}
        assert await ref.call(("serving",)) is True


async def test_a_call_made_before_the_gate_opens_starts_the_server_and_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv(mt.URL_ENV, f"http://127.0.0.1:{port}/mcp")
    monkeypatch.setattr(mt, "_CLIENT", None)
    async with Node() as node:
        ref = await node.spawn(MemoryService, str(tmp_path / "memory.jsonl"), port=port, gate=ServeGate())
        assert json.loads(await call(mt.read_graph)) == {"entities": [], "relations": []}
        assert await ref.call(("serving",)) is True


async def test_a_taken_port_fails_the_start_in_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Node() as node:
            with pytest.raises(BeamishError) as failed:
                await node.spawn(MemoryService, str(tmp_path / "memory.jsonl"), port=port)
    assert str(failed.value) == (
        f"memory server: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
        "process listens on it); stop that process, or set another [memory] port in beamish.toml "
        "(or none, for a free one)"
    )


async def test_readiness_waits_for_the_memory_server_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv(mt.URL_ENV, f"http://127.0.0.1:{port}/mcp")
    monkeypatch.setattr(mt, "_CLIENT", None)
    gate = ServeGate()
    kwargs = {"file": str(tmp_path / "memory.jsonl"), "port": port, "gate": gate}
    async with Node() as node:
        root = await node.start_supervisor(
            SupervisorSpec([ChildSpec("memory", MemoryService, kwargs=kwargs)])
        )
        assert await _memory_unready(root) == "the memory server is starting"
        gate.open()
        await call(mt.read_graph)  # answered once it serves
        assert await _memory_unready(root) is None
