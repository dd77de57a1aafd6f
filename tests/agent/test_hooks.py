"""Hook points: pause and resume, abort, journaled nudges, 429s and 5xx waited out inside the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, Looping, OverBudget
from beamish._exceptions import AbortRun, PauseRun
from beamish.agent._hooks import NullHooks, RunInfo
from beamish.agent._messages import ModelRequest
from beamish.agent.models._retry import RetryPolicy
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_tools as ft
from ._scripts import call, calls_made, write_script

pytestmark = pytest.mark.timeout(30)

TWO_TURNS = [{"tool_calls": [call("lookup", topic="a")]}, {"text": "done: {last_tool}"}]


class Recorder(NullHooks):
    """Hooks that record what they saw and pause/abort/nudge when told to."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, bool]] = []
        self.pause_at: int | None = None
        self.abort_after: str | None = None
        self.nudge_after_seq: int | None = None
        self.waits: list[float] = []
        self.resumed: list[str] = []

    async def before_model_call(self, run: RunInfo, request: ModelRequest) -> Any:
        self.seen.append(("model", run.seq, run.replaying))
        if self.pause_at == run.seq:
            self.pause_at = None
            raise PauseRun(OverBudget(limit="per_run_usd", spent=0.5, cap=0.5))
        return "reservation"

    async def after_model_call(self, run: RunInfo, request: ModelRequest, response: Any, token: Any) -> float:
        assert token == "reservation"
        return 0.25

    async def after_step(self, run: RunInfo, kind: str, name: str, result: str, is_error: bool) -> str | None:
        self.seen.append((kind, run.seq, run.replaying))
        if self.abort_after == name:
            raise AbortRun(Looping(pattern="same_action_same_result", detail=name, from_step=run.seq))
        if self.nudge_after_seq == run.seq:
            return "Please wrap up now."
        return None

    def rate_limited(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def resume(self, agent: str) -> None:
        self.resumed.append(agent)


def _node_with(tmp_path: Path, script: Path, hooks: Recorder, **kw: Any) -> tuple[Node, AgentSpec]:
    spec = AgentSpec(
        name="ops",
        instructions="Run operations.",
        model=f"scripted:{script}",
        tools=[ft.lookup],
        isolation="task",
        hooks=lambda spec, store, clock: hooks,
        **kw,
    )
    return Node(store=f"sqlite:///{tmp_path}/j.db"), spec


async def test_a_pausing_hook_parks_the_run_and_resume_continues_it_from_the_journal(tmp_path: Path) -> None:
    script = write_script(tmp_path, "s", TWO_TURNS)
    hooks = Recorder()
    hooks.pause_at = 2
    node, spec = _node_with(tmp_path, script, hooks)
    async with node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("ops", "check")
        paused = await node.result(run_id, timeout=10)
        assert paused.status == "paused"
        assert paused.reason == OverBudget(limit="per_run_usd", spent=0.5, cap=0.5)
        assert await node.resume("ops") == 1
        result = await node.result(run_id, timeout=10)
    assert result.status == "succeeded"
    assert result.output == "done: fact about a"
    assert result.model_calls == 2 and result.replayed_calls == 1
    assert result.cost_usd == pytest.approx(0.5)
    assert len(calls_made(script)) == 2
    assert hooks.resumed == ["ops"]
    assert ("llm", 0, True) in hooks.seen, "the replayed step was shown to the hooks as replaying"


async def test_an_aborting_hook_fails_the_run_and_the_agent_takes_its_next_run(tmp_path: Path) -> None:
    script = write_script(tmp_path, "s", TWO_TURNS)
    hooks = Recorder()
    hooks.abort_after = "lookup"
    node, spec = _node_with(tmp_path, script, hooks)
    async with node:
        sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        first = await node.result(await node.submit("ops", "one"), timeout=10)
        hooks.abort_after = None
        second = await node.result(await node.submit("ops", "two"), timeout=10)
        (child,) = await sup.which_children()
    assert first.status == "failed"
    assert isinstance(first.reason, Looping) and first.reason.pattern == "same_action_same_result"
    assert second.status == "succeeded"
    assert child.restarts == 0


async def test_a_nudge_is_journaled_and_replayed_without_divergence(tmp_path: Path) -> None:
    script = write_script(tmp_path, "s", TWO_TURNS)
    hooks = Recorder()
    hooks.nudge_after_seq = 1
    node, spec = _node_with(tmp_path, script, hooks)
    url = f"sqlite:///{tmp_path}/j.db"
    async with node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("ops", "check")
        assert (await node.result(run_id, timeout=10)).status == "succeeded"
    async with await open_store(url) as store:
        steps = await store.steps(run_id)
        assert [s.kind for s in steps] == ["llm", "tool", "signal", "llm"]
        assert steps[2].messages == [{"role": "user", "text": "Please wrap up now."}]
        await store.update_run(run_id, status="queued")  # run it again: everything replays
    quiet = Recorder()
    node, spec = _node_with(tmp_path, script, quiet)
    async with node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        again = await node.result(run_id, timeout=10)
    async with await open_store(url) as store:
        diverged = await store.events(kinds=["step.divergence"])
    assert again.status == "succeeded" and again.replayed_calls == 2
    assert diverged == []
    assert len(calls_made(script)) == 2


async def test_a_429_is_waited_out_inside_the_agent_and_counts_no_restart(tmp_path: Path) -> None:
    turns = [
        {"text": "after the wait", "faults": [{"fault": "rate_limit", "retry_after_s": 0.05}]},
    ]
    script = write_script(tmp_path, "s", turns)
    hooks = Recorder()
    node, spec = _node_with(tmp_path, script, hooks)
    async with node:
        sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("ops", "go")
        result = await node.result(run_id, timeout=10)
        (child,) = await sup.which_children()
    assert result.status == "succeeded" and result.output == "after the wait"
    assert child.restarts == 0
    assert hooks.waits == [0.05]
    async with await open_store(f"sqlite:///{tmp_path}/j.db") as store:
        (event,) = [e for _, e in await store.events(kinds=["model.rate_limited"])]
    assert event.data["wait_s"] == 0.05
    assert result.model_calls == 1


async def test_server_errors_are_retried_with_backoff_inside_the_agent(tmp_path: Path) -> None:
    turns = [
        {"text": "recovered", "faults": [{"fault": "server_error", "status": 502}, {"fault": "timeout"}]}
    ]
    script = write_script(tmp_path, "s", turns)
    node, spec = _node_with(tmp_path, script, Recorder(), retry=RetryPolicy(backoff_min_s=0.01, jitter=0))
    async with node:
        sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        result = await node.result(await node.submit("ops", "go"), timeout=10)
        (child,) = await sup.which_children()
    assert result.output == "recovered"
    assert child.restarts == 0
    assert len(calls_made(script)) == 3
