"""No write is lost: concurrent calls in one session, and several server processes on one file.

(The reference keeps 1 of 50 concurrent creates in one session, and a fraction of the writes of
several processes, each call reporting success.)
"""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from beamish.memory import KnowledgeGraph

from .conftest import beamish_command, mcp_session

pytestmark = pytest.mark.timeout(90)


def _names_in(path: Path) -> list[str]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [item["name"] for item in lines if item["type"] == "entity"]


def _entity(name: str) -> dict[str, Any]:
    return {"entities": [{"name": name, "entityType": "t", "observations": [f"obs of {name}"]}]}


async def test_fifty_concurrent_creates_in_one_session_all_persist(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    async with mcp_session(beamish_command(), memory) as session:
        results = await asyncio.gather(
            *(session.call_tool("create_entities", _entity(f"e{i}")) for i in range(50))
        )
        assert all(not r.is_error for r in results)
        graph = await session.call_tool("read_graph", {})
    assert sorted(e["name"] for e in graph.structured_content["entities"]) == sorted(
        f"e{i}" for i in range(50)
    )
    assert sorted(_names_in(memory)) == sorted(f"e{i}" for i in range(50))


async def _four_sessions(memory: Path, stack: AsyncExitStack) -> list[Any]:
    # Entered one by one: a session's task group must be exited by the task that entered it.
    return [await stack.enter_async_context(mcp_session(beamish_command(), memory)) for _ in range(4)]


async def test_four_server_processes_on_one_file_lose_no_write(tmp_path: Path) -> None:
    """4 processes x 25 sequential writes, then 4 x 25 concurrent, on one file: 0 lost.

    Each write is a create of a new entity plus an observation on one shared entity (a
    read-modify-write of the same line by every process)."""
    memory = tmp_path / "memory.jsonl"
    async with AsyncExitStack() as stack:
        sessions = await _four_sessions(memory, stack)
        await sessions[0].call_tool("create_entities", _entity("shared"))
        expected: set[str] = set()
        for phase in ("sequential", "concurrent"):

            async def worker(p: int, session: Any, phase: str = phase) -> None:
                calls = [("create_entities", _entity(f"{phase}-p{p}-{i}")) for i in range(25)]
                calls += [
                    (
                        "add_observations",
                        {"observations": [{"entityName": "shared", "contents": [f"{phase}-p{p}-{i}"]}]},
                    )
                    for i in range(25)
                ]
                if phase == "concurrent":
                    results = await asyncio.gather(*(session.call_tool(t, a) for t, a in calls))
                else:
                    results = [await session.call_tool(t, a) for t, a in calls]
                assert not any(r.is_error for r in results)

            await asyncio.gather(*(worker(p, s) for p, s in enumerate(sessions)))
            expected |= {f"{phase}-p{p}-{i}" for p in range(4) for i in range(25)}
            for session in sessions:
                graph = (await session.call_tool("read_graph", {})).structured_content
                assert {e["name"] for e in graph["entities"]} == expected | {"shared"}, phase
                shared = next(e for e in graph["entities"] if e["name"] == "shared")
                assert set(shared["observations"]) == expected | {"obs of shared"}, phase
            assert sorted(_names_in(memory)) == sorted(expected | {"shared"}), phase


def test_four_threads_with_their_own_loops_lose_no_write(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    errors: list[BaseException] = []

    def thread_main(t: int) -> None:
        async def run() -> None:
            async with KnowledgeGraph(memory) as graph:
                await asyncio.gather(
                    *(
                        graph.create_entities([{"name": f"t{t}-{i}", "entityType": "t", "observations": []}])
                        for i in range(25)
                    )
                )

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(_names_in(memory)) == sorted(f"t{t}-{i}" for t in range(4) for i in range(25))


async def test_concurrent_writes_are_grouped_into_few_durable_commits(tmp_path: Path) -> None:
    async with KnowledgeGraph(tmp_path / "memory.jsonl") as graph:
        created = await asyncio.gather(
            *(
                graph.create_entities([{"name": f"g{i}", "entityType": "t", "observations": []}])
                for i in range(50)
            )
        )
        assert [c[0]["name"] for c in created] == [f"g{i}" for i in range(50)]
        assert graph.commits <= 3
