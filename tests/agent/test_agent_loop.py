"""The journaled loop in a task-isolated agent: runs end to end, tools by effect, refusals, replay."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from beamish import AgentSpec, CallTimeout, SpecError, StartFailed
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_tools as ft
from ._scripts import TEN_STEPS, call, calls_made, write_script

pytestmark = pytest.mark.timeout(30)

TOOLS = [ft.lookup, ft.save_note, ft.publish, ft.wire_money, ft.explode]


def _agent(script: Path, name: str = "marketing", **kw: object) -> AgentSpec:
    return AgentSpec(
        name=name,
        instructions="You run marketing.",
        model=f"scripted:{script}",
        tools=kw.pop("tools", TOOLS),  # type: ignore[arg-type]
        isolation="task",
        **kw,  # type: ignore[arg-type]
    )


async def test_a_ten_step_run_succeeds_with_every_tool_effect_journaled(
    store_url: str, tmp_path: Path
) -> None:
    script = write_script(tmp_path, "ten", TEN_STEPS)
    run_id = f"run-{uuid.uuid4().hex}"
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()]))
        assert await node.submit("marketing", "Q3 launch", run_id=run_id) == run_id
        result = await node.result(run_id, timeout=20)
    assert result.status == "succeeded", result
    assert result.output == "Final report for: Q3 launch. Launch published once; notes saved."
    assert result.model_calls == 10
    assert result.replayed_calls == 0
    assert len(calls_made(script)) == 10
    assert [e.split()[0] for e in ft.effects(run_id)] == ["save", "publish", "save"]
    async with await open_store(store_url) as store:
        steps = await store.steps(run_id)
    assert [s.kind for s in steps].count("llm") == 10
    assert [(s.name, s.effect, s.phase) for s in steps if s.kind == "tool"][:3] == [
        ("lookup", None, "done"),
        ("save_note", "idempotent", "done"),
        ("publish", "once", "done"),
    ]


async def test_submitting_the_same_run_id_twice_runs_it_once(tmp_path: Path) -> None:
    script = write_script(tmp_path, "one", [{"text": "hello"}])
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()]))
        first = await node.submit("marketing", "hi", run_id="same")
        second = await node.submit("marketing", "hi", run_id="same")
        result = await node.result("same", timeout=10)
    assert first == second == "same"
    assert result.output == "hello"
    assert len(calls_made(script)) == 1


async def test_refused_and_failing_tool_calls_are_errors_the_model_reads(tmp_path: Path) -> None:
    turns = [
        {"tool_calls": [call("delete_everything")]},
        {"tool_calls": [{"name": "lookup", "raw_arguments": "{broken"}]},
        {"tool_calls": [call("lookup", topic=42)]},
        {"tool_calls": [call("explode", reason="test")]},
        {"text": "I give up politely."},
    ]
    script = write_script(tmp_path, "bad", turns)
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(
            SupervisorSpec([_agent(script, tools=[ft.lookup, ft.explode]).child_spec()])
        )
        run_id = await node.submit("marketing", "try things")
        result = await node.result(run_id, timeout=10)
        store = await open_store(f"sqlite:///{tmp_path}/j.db")
        steps = await store.steps(run_id)
        await store.close()
    assert result.status == "succeeded"
    texts = [s.messages[0]["text"] for s in steps if s.kind == "tool"]
    assert (
        "tool 'delete_everything' is not available to agent 'marketing' (allowed: explode, lookup)"
        in texts[0]
    )
    assert "malformed call of tool 'lookup'" in texts[1]
    assert "invalid arguments for tool 'lookup': topic" in texts[2]
    assert texts[3] == "tool 'explode' failed: RuntimeError: boom: test"
    assert all(s.messages[0]["is_error"] for s in steps if s.kind == "tool")


async def test_a_script_that_runs_out_fails_the_run_but_not_the_agent(tmp_path: Path) -> None:
    script = write_script(tmp_path, "short", [{"tool_calls": [call("lookup", topic="x")]}])
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()]))
        failed = await node.submit("marketing", "go")
        result = await node.result(failed, timeout=10)
        assert result.status == "failed"
        assert result.reason is not None and "the script has 1 turns" in result.reason.message  # type: ignore[attr-defined]
        # the agent lives on and serves the next run
        second = await node.submit("marketing", "again")
        assert (await node.result(second, timeout=10)).status == "failed"


async def test_agents_need_a_node_with_a_journal_and_runs_need_a_known_agent(tmp_path: Path) -> None:
    script = write_script(tmp_path, "one", [{"text": "hello"}])
    async with Node() as node:
        with pytest.raises((SpecError, StartFailed)) as caught:
            await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()]))
    assert "agents need a journal" in repr(caught.value) + repr(caught.value.__cause__)
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()]))
        with pytest.raises(
            SpecError, match=r"no agent named 'sales' was started on this node \(known: marketing\)"
        ):
            await node.submit("sales", "sell")
        with pytest.raises(CallTimeout):
            await node.result(await node.submit("marketing", "hi", run_id="slow"), timeout=0)
