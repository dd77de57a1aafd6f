"""The durable queue in front of an agent: priorities, first in first out within a priority, one run
in flight per concurrency key, and its counts (queued, running) as ``status`` shows them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import beamish
from beamish import AgentSpec, SpecError
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from ._scripts import write_script

pytestmark = pytest.mark.timeout(60)

#: The tasks in the order they reached the gate (the order their runs started), and the gate.
ORDER: list[str] = []
GATE: dict[str, asyncio.Event] = {}


@beamish.tool
async def checkpoint(ctx: beamish.ToolContext) -> str:
    """Pass the checkpoint once the test opens it."""
    ORDER.append(ctx.run_id)  # the tests name each run after its task
    await GATE["open"].wait()
    return "passed"


def _spec(tmp: Path, concurrency: int) -> AgentSpec:
    path = write_script(
        tmp,
        "queue",
        [{"tool_calls": [{"name": "checkpoint", "arguments": {}}]}, {"text": "done {task}"}],
    )
    return AgentSpec(
        name="support",
        instructions="Answer customers.",
        model=f"scripted:{path}",
        tools=[checkpoint],
        isolation="task",
        concurrency=concurrency,
    )


@pytest.fixture(autouse=True)
def _fresh_gate() -> None:
    ORDER.clear()
    GATE["open"] = asyncio.Event()


async def _submit_all(node: Node, runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [await node.submit("support", task, run_id=task, **kw) for task, kw in runs]


async def test_higher_priority_runs_first_and_equal_priorities_in_order_of_submission(
    store_url: str, tmp_path: Path
) -> None:
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([_spec(tmp_path, 1).child_spec()]))
        first = await node.submit("support", "blocker", run_id="blocker")
        await wait_for(lambda: ORDER == ["blocker"], timeout=10, what="the first run at the gate")
        ids = await _submit_all(
            node,
            [
                ("low-a", {}),
                ("low-b", {"priority": 0}),
                ("high-c", {"priority": 5}),
                ("high-d", {"priority": 5}),
                ("mid-e", {"priority": 1}),
                ("below-f", {"priority": -3}),
            ],
        )
        GATE["open"].set()
        results = [await node.result(i, timeout=10) for i in [first, *ids]]
    assert [r.status for r in results] == ["succeeded"] * 7
    assert ORDER == ["blocker", "high-c", "high-d", "mid-e", "low-a", "low-b", "below-f"]


async def test_runs_sharing_a_concurrency_key_run_one_at_a_time_in_order(
    store_url: str, tmp_path: Path
) -> None:
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([_spec(tmp_path, 3).child_spec()]))
        ids = await _submit_all(
            node,
            [
                ("alice-1", {"concurrency_key": "alice"}),
                ("alice-2", {"concurrency_key": "alice"}),
                ("bob-1", {"concurrency_key": "bob"}),
                ("alice-3", {"concurrency_key": "alice", "priority": 9}),
                ("anyone", {}),
            ],
        )
        await wait_for(lambda: len(ORDER) == 3, timeout=10, what="three runs at the gate")
        store = await open_store(store_url)
        try:
            counts = await store.queue_counts("support")
        finally:
            await store.close()
        await asyncio.sleep(0)
        assert sorted(ORDER) == ["alice-1", "anyone", "bob-1"], "one alice run at a time"
        assert counts == {"support": {"queued": 2, "running": 3}}
        GATE["open"].set()
        results = [await node.result(i, timeout=10) for i in ids]
    assert [r.status for r in results] == ["succeeded"] * 5
    alice = [task for task in ORDER if task.startswith("alice")]
    assert alice == ["alice-1", "alice-3", "alice-2"], "within a key: priority, then first in first out"


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"priority": 1.5}, "priority="),
        ({"priority": True}, "priority="),
        ({"priority": 10**9}, "priority="),
        ({"concurrency_key": ""}, "concurrency_key="),
        ({"concurrency_key": 7}, "concurrency_key="),
    ],
)
async def test_a_bad_queue_place_is_refused_naming_it(tmp_path: Path, kw: dict[str, Any], named: str) -> None:
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_spec(tmp_path, 1).child_spec()]))
        with pytest.raises(SpecError, match=named):
            await node.submit("support", "task", **kw)
