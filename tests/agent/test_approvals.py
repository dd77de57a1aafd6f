"""Approval gates and questions: a run stops before a gated call holding only its rows, a person's
decision resumes it (on any node), a denial's note is the tool's result, an expiry applies its policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import beamish
from beamish import AgentSpec, ApprovalRule
from beamish.agent._gates import Gate, decide, expire_due, gate_at, get_gate
from beamish.agent._messages import ModelRequest, ModelResponse, ToolCall
from beamish.errors import GateError
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock

from . import fixture_tools as ft

pytestmark = pytest.mark.timeout(60)


@dataclass
class Recording:
    """A model that plays ``turns`` and keeps every request it was sent (what the model read)."""

    turns: list[ModelResponse]
    requests: list[ModelRequest] = field(default_factory=list)
    name: str = "test:recording"
    provider: str = "test"
    model: str = "recording"

    async def complete(self, request: ModelRequest, *, on_chunk: Any = None) -> ModelResponse:
        self.requests.append(request)
        return self.turns[min(len(self.requests) - 1, len(self.turns) - 1)]

    async def aclose(self) -> None:
        return None

    def last_tool_result(self) -> str:
        return self.requests[-1].messages[-1].text


def _post_then_finish(text: str = "launch day", tool: str = "post") -> Recording:
    return Recording(
        [
            ModelResponse(tool_calls=(ToolCall(id="c1", name=tool, arguments={"text": text}),)),
            ModelResponse(text="done"),
        ]
    )


def _agent(model: Any, tools: list[Any] | None = None, **kw: Any) -> AgentSpec:
    return AgentSpec("marketing", "You post.", model, tools=tools or [ft.post], isolation="task", **kw)


@contextlib.asynccontextmanager
async def _running(url: str, spec: AgentSpec) -> AsyncIterator[tuple[Node, Any]]:
    """A node serving ``spec``, and a store of its own to decide from."""
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        store = await open_store(url)
        try:
            yield node, store
        finally:
            await store.close()


async def _awaiting(store: Any, run_id: str, timeout: float = 20.0) -> Gate:
    """Wait (on the store's event feed, bounded) until the run stops at a gate; that gate."""
    async with asyncio.timeout(timeout):
        async for _, event in store.follow(poll_s=0.02, kinds=("approval.requested", "question.asked")):
            if event.subject == run_id:
                gate = await get_gate(store, event.data["gate_id"])
                assert (await store.get_run(run_id)).status == "awaiting_approval"
                return gate
    raise AssertionError("unreachable")


async def test_a_gated_once_call_waits_for_approval_then_runs_exactly_once(store_url: str) -> None:
    model = _post_then_finish()
    run_id = f"r-{uuid.uuid4().hex}"
    async with _running(store_url, _agent(model)) as (node, store):
        await node.submit("marketing", "launch", run_id=run_id)
        gate = await _awaiting(store, run_id)
        assert (gate.kind, gate.agent, gate.tool, gate.args) == (
            "approval",
            "marketing",
            "post",
            {"text": "launch day"},
        )
        assert gate.on_expiry == "deny" and gate.run_id == run_id
        assert ft.effects(run_id) == [], "nothing happens before a person decides"
        kinds = [e.kind for _, e in await store.events(subject=run_id)]
        assert "approval.requested" in kinds
        decided = await decide(store, gate.gate_id, "approve", by="alice")
        assert decided.decided_by == "alice" and decided.decided_at is not None
        result = await node.result(run_id, timeout=20)
    assert result.status == "succeeded" and result.output == "done"
    assert len(ft.effects(run_id)) == 1
    assert model.last_tool_result() == "posted 'launch day'"


async def test_a_denial_note_reaches_the_model_as_the_tool_result(store_url: str) -> None:
    model = _post_then_finish()
    run_id = f"r-{uuid.uuid4().hex}"
    async with _running(store_url, _agent(model)) as (node, store):
        await node.submit("marketing", "launch", run_id=run_id)
        gate = await _awaiting(store, run_id)
        await decide(store, gate.gate_id, "deny", by="bob", note="too salesy")
        result = await node.result(run_id, timeout=20)
        kinds = [e.kind for _, e in await store.events(subject=run_id)]
    assert result.status == "succeeded"
    assert model.last_tool_result() == "denied by bob: too salesy"
    assert model.requests[-1].messages[-1].is_error
    assert ft.effects(run_id) == []
    assert "approval.decided" in kinds


async def test_an_edit_runs_the_edited_arguments(store_url: str) -> None:
    model = _post_then_finish("BUY NOW!!!")
    run_id = f"r-{uuid.uuid4().hex}"
    async with _running(store_url, _agent(model)) as (node, store):
        await node.submit("marketing", "launch", run_id=run_id)
        gate = await _awaiting(store, run_id)
        await decide(store, gate.gate_id, "edit", by="alice", args={"text": "Now available."})
        await node.result(run_id, timeout=20)
    assert [line.split(" ", 2)[2] for line in ft.effects(run_id)] == ["Now available."]
    assert model.last_tool_result() == "posted 'Now available.'"


async def test_ask_human_returns_the_answer_as_the_tool_result(store_url: str) -> None:
    model = Recording(
        [
            ModelResponse(
                tool_calls=(ToolCall(id="q", name="ask_human", arguments={"question": "Which day?"}),)
            ),
            ModelResponse(text="ok"),
        ]
    )
    run_id = f"r-{uuid.uuid4().hex}"
    async with _running(store_url, _agent(model, tools=["ask_human"])) as (node, store):
        await node.submit("marketing", "plan", run_id=run_id)
        gate = await _awaiting(store, run_id)
        assert (gate.kind, gate.args) == ("question", {"question": "Which day?"})
        with pytest.raises(GateError, match="is a question, not an approval"):
            await decide(store, gate.gate_id, "approve", by="alice")
        await decide(store, gate.gate_id, "answer", by="alice", answer="Tuesday")
        result = await node.result(run_id, timeout=20)
    assert result.status == "succeeded"
    assert model.last_tool_result() == "Tuesday"


async def test_a_waiting_run_holds_no_agent_and_others_are_served(store_url: str) -> None:
    gated, free = f"g-{uuid.uuid4().hex}", f"f-{uuid.uuid4().hex}"
    model = Recording(
        [
            ModelResponse(tool_calls=(ToolCall(id="c1", name="post", arguments={"text": "x"}),)),
            ModelResponse(text="second run done"),
        ]
    )
    async with _running(store_url, _agent(model)) as (node, store):
        await node.submit("marketing", "gated", run_id=gated)
        await _awaiting(store, gated)
        await node.submit("marketing", "free", run_id=free)
        result = await node.result(free, timeout=20)
        assert (await store.get_run(gated)).status == "awaiting_approval"
    assert result.status == "succeeded"


async def test_only_an_approver_may_decide_and_only_once(store_url: str) -> None:
    rules = [ApprovalRule(tool="post", approvers=("alice",))]
    model = _post_then_finish()
    run_id = f"r-{uuid.uuid4().hex}"
    async with _running(store_url, _agent(model, approvals=rules)) as (node, store):
        await node.submit("marketing", "launch", run_id=run_id)
        gate = await _awaiting(store, run_id)
        assert gate.approvers == ("alice",)
        with pytest.raises(GateError, match="'mallory' may not decide"):
            await decide(store, gate.gate_id, "approve", by="mallory")
        await decide(store, gate.gate_id, "approve", by="alice")
        with pytest.raises(GateError, match="already decided"):
            await decide(store, gate.gate_id, "deny", by="alice")
        await node.result(run_id, timeout=20)
    assert len(ft.effects(run_id)) == 1


@pytest.mark.parametrize("policy", ["deny", "escalate"])
async def test_an_expired_gate_applies_its_policy(store_url: str, policy: str) -> None:
    rule = ApprovalRule(
        tool="post", approvers=("alice",), expires_after_s=3600, on_expiry=policy,
        escalate_to=("boss",) if policy == "escalate" else (),
    )  # fmt: skip
    model = _post_then_finish()
    run_id = f"r-{uuid.uuid4().hex}"
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([_agent(model, approvals=[rule]).child_spec()]))
        store = await open_store(store_url)
        clock = FakeClock(wall_start=time.time())
        later = await open_store(store_url, clock=clock)
        try:
            await node.submit("marketing", "launch", run_id=run_id)
            gate = await _awaiting(store, run_id)
            assert await expire_due(later) == [], "not before its time"
            clock.set_wall(clock.time() + 3601)
            (changed,) = await expire_due(later)
            if policy == "escalate":
                assert changed.approvers == ("boss",) and changed.status == "pending"
                with pytest.raises(GateError, match="may not decide"):
                    await decide(store, gate.gate_id, "approve", by="alice")
                clock.set_wall(clock.time() + 3601)
                (changed,) = await expire_due(later)
            assert (changed.status, changed.decided_by) == ("denied", "expiry")
            result = await node.result(run_id, timeout=20)
        finally:
            await later.close()
            await store.close()
    assert result.status == "succeeded"
    assert model.last_tool_result() == "denied by expiry: no approval before the gate expired"
    assert ft.effects(run_id) == [], "a once effect is never approved by default"


async def test_a_rule_with_conditions_gates_only_matching_calls(tmp_path: Path) -> None:
    rule = ApprovalRule(tool="publish", if_args={"text": "launch day"}, if_cost_over=None)
    model = Recording(
        [
            ModelResponse(tool_calls=(ToolCall(id="a", name="publish", arguments={"text": "small"}),)),
            ModelResponse(tool_calls=(ToolCall(id="b", name="publish", arguments={"text": "launch day"}),)),
            ModelResponse(text="done"),
        ]
    )
    url = f"sqlite:///{tmp_path}/j.db"
    run_id = f"r-{uuid.uuid4().hex}"
    async with Node(store=url) as node:
        spec = _agent(model, tools=[ft.publish], approvals=[rule])
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        store = await open_store(url)
        try:
            await node.submit("marketing", "go", run_id=run_id)
            gate = await _awaiting(store, run_id)
            assert gate.args == {"text": "launch day"} and gate.seq == 3
            assert len(ft.effects(run_id)) == 1, "the call that matched no condition ran at once"
            assert await gate_at(store, run_id, 1) is None
        finally:
            await store.close()


def test_a_cost_condition_needs_the_cost_over_its_threshold() -> None:
    rule = ApprovalRule(tool="post", if_cost_over=0.5)
    assert not rule.matches("post", {}, 0.4)
    assert rule.matches("post", {}, 0.6)
    assert not rule.matches("other", {}, 9.0)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"tool": "post", "on_expiry": "later"}, "on_expiry='later' is invalid"),
        ({"tool": "post", "on_expiry": "escalate"}, "needs escalate_to"),
        ({"tool": "post", "expires_after_s": 0}, "expires_after_s=0 is invalid"),
        ({"tool": "post", "approvers": "alice"}, "expected a list of names"),
        ({"tool": "post", "when": "x"}, "unknown key"),
        ({"approvers": ["a"]}, "needs tool"),
    ],
)
def test_a_bad_rule_names_what_is_wrong(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(beamish.SpecError, match=problem):
        ApprovalRule.from_mapping(values)


def test_approval_rules_round_trip_through_a_process_spec() -> None:
    rule = ApprovalRule(tool="publish", approvers=("alice",), if_args={"text": "x"}, if_cost_over=1.0)
    spec = AgentSpec("marketing", "x", "scripted:/dev/null", tools=[ft.publish], approvals=[rule])
    back = AgentSpec.from_json(spec.to_json())
    assert back.approvals == (rule,)


async def test_a_question_without_text_is_refused_to_the_model_without_a_gate(tmp_path: Path) -> None:
    model = Recording(
        [
            ModelResponse(tool_calls=(ToolCall(id="q", name="ask_human", arguments={"question": " "}),)),
            ModelResponse(text="ok"),
        ]
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with _running(url, _agent(model, tools=["ask_human"])) as (node, store):
        await node.submit("marketing", "plan", run_id="r1")
        result = await node.result("r1", timeout=20)
        assert await gate_at(store, "r1", 1) is None
    assert result.status == "succeeded"
    assert model.last_tool_result() == "ask_human needs a non-empty 'question' string"
