"""Semantic supervision of a framework agent: its budget pauses it, its loops are caught.

A Pydantic AI agent (``entry``) whose model requests go through a durable client is reserved,
priced and watched like a native agent (watched by default, as every agent is): the budget refuses
the call that would pass the cap before any byte is sent, and the loop detector reads the tool steps
the adapter journals.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent._wire import WireServer
from beamish import AgentSpec, Budget, Looping, OverBudget, RunResult, Watchdog
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_agents as fa
from ._replies import Turn, replies

pytestmark = pytest.mark.timeout(45)


async def _run(
    tmp_path: Path, turns: list[Turn], usage: dict[str, Any] | None = None, resume: bool = False, **spec: Any
) -> tuple[RunResult, int, list[str], list[Any]]:
    """Run the Pydantic AI agent on ``turns`` (``resume``: once more after it pauses); its result,
    the requests served, the event kinds of the run, the request bodies."""
    run_id = f"pai-{uuid.uuid4().hex}"
    agent = AgentSpec(
        name="writer",
        instructions="",
        model="openai:gpt-4o-mini",
        entry="byo.fixture_agents:pydantic_ai",
        isolation="task",
        **spec,
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with WireServer() as server:
        server.queue(*replies("openai-json", turns, usage))
        async with Node(store=url) as node:
            await node.start_supervisor(SupervisorSpec([agent.child_spec()]))
            await node.submit("writer", {"task": "write", "base_url": server.url}, run_id=run_id)
            result = await node.result(run_id, timeout=30)
            if resume:
                assert result.status == "paused"
                assert await node.resume("writer") == 1
                result = await node.result(run_id, timeout=30)
        served, bodies = len(server.requests), [r.body for r in server.requests]
    async with await open_store(url) as store:
        kinds = [e.kind for _, e in await store.events() if run_id in (e.subject, e.data.get("run_id"))]
    return result, served, kinds, bodies


async def test_a_framework_agent_over_its_run_budget_is_paused_before_the_next_request(
    tmp_path: Path,
) -> None:
    # each call may cost up to ~$0.003 at gpt-4o-mini's price (its 4096 output tokens, mostly); the
    # first answer costs $0.00255, so the second call's worst case no longer fits the $0.004 cap
    expensive = {"prompt_tokens": 1_000, "completion_tokens": 4_000, "total_tokens": 5_000}
    turns: list[Turn] = [("call_1", "lookup", {"topic": "market"}), "never asked"]
    result, served, kinds, _ = await _run(tmp_path, turns, expensive, budget=Budget(per_run_usd=0.004))
    assert result.status == "paused"
    assert isinstance(result.reason, OverBudget) and result.reason.limit == "run.per_run_usd"
    assert served == 1, "the call that would pass the cap was never sent"
    assert result.cost_usd == pytest.approx(1_000 * 0.15e-6 + 4_000 * 0.6e-6)
    assert "budget.exceeded" in kinds and "budget.overshoot" not in kinds


async def test_a_framework_agent_with_a_default_spec_repeating_one_tool_call_is_nudged_then_paused(
    tmp_path: Path,
) -> None:
    # no budget, no watchdog: an entry agent and its durable client are protected all the same
    turns: list[Turn] = [(f"call_{i}", "lookup", {"topic": "same"}) for i in range(10)] + ["done"]
    result, served, kinds, requests = await _run(tmp_path, turns)
    nudged = [i for i, body in enumerate(requests) if "[beamish] You appear to be stuck" in json.dumps(body)]
    assert nudged == [4], "the nudge went to the model once, with the request after the fourth repeat"
    assert result.status == "paused"
    assert isinstance(result.reason, Looping) and result.reason.pattern == "same_action_same_result"
    assert kinds.count("loop.nudged") == 1 and kinds.count("loop.detected") == 1
    assert served == 5, "paused at the fifth identical call, not after all ten"
    assert fa.effects(result.run_id) == ["lookup same"] * 5


async def test_a_resumed_looping_framework_agent_replays_its_nudge_and_is_stopped_at_the_next_repeat(
    tmp_path: Path,
) -> None:
    turns: list[Turn] = [(f"call_{i}", "lookup", {"topic": "same"}) for i in range(10)] + ["done"]
    result, served, kinds, _ = await _run(tmp_path, turns, resume=True)
    assert result.status == "failed"
    assert isinstance(result.reason, Looping)
    assert "step.divergence" not in kinds, "the replay, nudge included, asked exactly what it asked before"
    assert served == 6, "the five answered requests came from the journal; one more was sent live"
    assert kinds.count("loop.detected") == 2


async def test_a_framework_agent_whose_model_stream_stalls_is_killed_as_hung_and_resumes(
    tmp_path: Path,
) -> None:
    turns: list[Turn] = [("call_1", "lookup", {"topic": "market"}), "Done."]
    first, *rest = replies("openai-stream", turns)
    stalled = replies("openai-stream", turns[1:])[0]
    stalled.stall_after = 1  # one chunk, then silence: no heartbeat reaches the watchdog
    spec = AgentSpec(
        name="writer",
        instructions="",
        model="openai:gpt-4o-mini",
        entry="byo.fixture_agents:plain_openai",
        isolation="task",
        watchdog=Watchdog(hang_after_s=1.0),
    )
    async with WireServer() as server:
        server.queue(first, stalled, *rest)
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            events = node.events()
            sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
            run_id = await node.submit("writer", {"task": "go", "base_url": server.url}, run_id="stall")
            result = await node.result(run_id, timeout=20)
            (child,) = await sup.which_children()
            exits = []
            async for event in events:
                if event.kind == "child.exited":
                    exits.append(event.data["reason"]["kind"])
                    break
            await events.aclose()
        served = len(server.requests)
    assert result.status == "succeeded" and result.output == "Done."
    assert exits == ["hung"] and child.restarts == 1
    assert served == 3, "the answered request was replayed; only the stalled one was sent again"
