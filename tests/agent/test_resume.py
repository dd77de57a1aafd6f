"""A killed agent resumes mid-run from its journal: no model call paid twice, no effect done twice.

The agent runs with ``isolation="process"``; the test SIGKILLs its OS process at a known step, its
supervisor starts a new one, and the run continues from the journal. Counting is done outside the
journal: the scripted model logs each call (with the pid that made it) and the tools log each effect.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from beamish import AgentSpec
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft
from ._scripts import TEN_STEPS, call, calls_made, write_script

pytestmark = pytest.mark.timeout(60)

TOOLS = [ft.lookup, ft.save_note, ft.publish, ft.wire_money]


def _agent(script: Path, **kw: object) -> AgentSpec:
    return AgentSpec(
        name="marketing",
        instructions="You run marketing.",
        model=f"scripted:{script}",
        tools=TOOLS,
        isolation="process",
        **kw,  # type: ignore[arg-type]
    )


async def _run_until_held(node: Node, script: Path, run_id: str, hold: str, task: str = "Q3 launch") -> int:
    """Start the agent, submit the run, wait until the tool holding at ``hold`` blocks; its pid."""
    ft.hold_file(run_id).write_text(hold)
    await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()], intensity=3, period=30))
    await node.submit("marketing", task, run_id=run_id)
    holding = ft.holding_file(run_id)
    await wait_for(holding.exists, timeout=30, what="the agent to reach the held tool")
    pid = int(holding.read_text())
    assert pid != os.getpid(), "the agent must run in its own process"
    return pid


async def test_a_sigkilled_agent_process_resumes_with_exactly_ten_model_calls(
    store_url: str, tmp_path: Path
) -> None:
    # the uninterrupted run, for the expected answer
    clean_script = write_script(tmp_path, "clean", TEN_STEPS)
    clean_id = f"clean-{uuid.uuid4().hex}"
    async with Node(store=f"sqlite:///{tmp_path}/clean.db") as node:
        await node.start_supervisor(SupervisorSpec([_agent(clean_script).child_spec()]))
        await node.submit("marketing", "Q3 launch", run_id=clean_id)
        clean = await node.result(clean_id, timeout=30)
    assert clean.status == "succeeded"

    script = write_script(tmp_path, "killed", TEN_STEPS)
    run_id = f"killed-{uuid.uuid4().hex}"
    async with Node(store=store_url) as node:
        pid = await _run_until_held(node, script, run_id, "lookup:hold-here")
        assert len(calls_made(script)) == 6  # the sixth model call asked for the held tool
        os.kill(pid, signal.SIGKILL)
        result = await node.result(run_id, timeout=30)

    assert result.status == "succeeded"
    assert result.output == clean.output
    assert result.model_calls == 10
    assert result.replayed_calls == 6
    calls = calls_made(script)
    assert len(calls) == 10, "a resumed run pays for no model call twice"
    assert [c["turn"] for c in calls] == list(range(10))
    assert {c["pid"] for c in calls[:6]} == {pid}
    assert pid not in {c["pid"] for c in calls[6:]}, "the last four calls came from the restarted process"
    publishes = [e for e in ft.effects(run_id) if e.startswith("publish")]
    assert publishes == [f"publish {run_id}:5 launch day"], "the once tool ran exactly once"
    async with await open_store(store_url) as store:
        replayed = [e for _, e in await store.events(kinds=["step.replayed"], subject=run_id)]
    assert replayed and replayed[0].data["count"] == 11  # six model steps and five tool steps


ONCE_THEN_DONE = [
    {"tool_calls": [call("publish", text="big news")]},
    {"text": "Published."},
]
WIRE_THEN_DONE = [
    {"tool_calls": [call("wire_money", amount=100)]},
    {"text": "Sent."},
]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_kill_between_intent_and_done_is_reconciled_never_repeated(
    store_url: str, tmp_path: Path, when: str
) -> None:
    script = write_script(tmp_path, "once", ONCE_THEN_DONE)
    run_id = f"once-{when}-{uuid.uuid4().hex}"
    url = store_url
    async with Node(store=url) as node:
        pid = await _run_until_held(node, script, run_id, when)
        async with await open_store(url) as store:
            step = await store.step(run_id, 1)
        assert step is not None and step.phase == "intent"
        os.kill(pid, signal.SIGKILL)
        result = await node.result(run_id, timeout=30)
    assert result.status == "succeeded"
    publishes = [e for e in ft.effects(run_id) if e.startswith("publish")]
    assert publishes == [f"publish {run_id}:1 big news"], "exactly one execution"
    async with await open_store(url) as store:
        step = await store.step(run_id, 1)
    assert step is not None and step.phase == "done"
    expected = "published 'big news' (reconciled)" if when == "after" else "published 'big news'"
    assert step.messages is not None and step.messages[0]["text"] == expected


async def test_a_once_tool_without_reconcile_parks_the_run_as_needs_attention(
    store_url: str, tmp_path: Path
) -> None:
    script = write_script(tmp_path, "wire", WIRE_THEN_DONE)
    run_id = f"wire-{uuid.uuid4().hex}"
    url = store_url
    async with Node(store=url) as node:
        pid = await _run_until_held(node, script, run_id, "after")
        os.kill(pid, signal.SIGKILL)
        result = await node.result(run_id, timeout=30)
    assert result.status == "needs_attention"
    assert [e for e in ft.effects(run_id) if e.startswith("wire")] == [f"wire {run_id}:1 100"]
    assert len(calls_made(script)) == 1, "the run stopped before asking the model again"
    async with await open_store(url) as store:
        step = await store.step(run_id, 1)
    assert step is not None and step.phase == "unknown"


async def test_a_process_agent_that_stops_beating_is_killed_as_hung_and_resumes(tmp_path: Path) -> None:
    turns = [
        {"tool_calls": [call("lookup", topic="a")]},
        {"tool_calls": [call("stall_loop", seconds=30)]},
        {"text": "finished after {last_tool}"},
    ]
    script = write_script(tmp_path, "stall", turns)
    run_id = f"stall-{uuid.uuid4().hex}"
    ft.stall_file(run_id).write_text("once")
    spec = AgentSpec(
        "ops",
        "Operate.",
        f"scripted:{script}",
        [ft.lookup, ft.stall_loop],
        isolation="process",
        hang_after_s=2.0,
    )
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        events = node.events()
        sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        await node.submit("ops", "go", run_id=run_id)
        result = await node.result(run_id, timeout=20)
        (child,) = await sup.which_children()
        exits = []
        async for event in events:
            if event.kind == "child.exited":
                exits.append(event.data["reason"]["kind"])
                break
        await events.aclose()
    assert result.status == "succeeded" and result.output == "finished after ran without stalling"
    assert exits == ["hung"]
    assert child.restarts == 1
    calls = calls_made(script)
    assert [c["turn"] for c in calls] == [0, 1, 2], "no model call was repeated after the kill"
    assert calls[1]["pid"] != calls[2]["pid"]
