"""An agent with ``concurrency = N`` serves up to N runs at once, each with its own journal, watchdog,
loop detector and budget reservations; a killed process resumes every run it held from its journal."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

import beamish
from beamish import AgentSpec, OverBudget, SpecError
from beamish.agent._budget import Budget
from beamish.agent._messages import ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent._pricing import Price
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft
from ._scripts import TEN_STEPS, calls_made, write_script

pytestmark = pytest.mark.timeout(60)

#: Runs that reached ``gate``, and the event that lets them all through (made per test).
IN_GATE: set[str] = set()
OPEN: dict[str, asyncio.Event] = {}


@beamish.tool
async def gate(ctx: beamish.ToolContext) -> str:
    """Wait at the gate until the test opens it."""
    IN_GATE.add(ctx.run_id)
    await OPEN["gate"].wait()
    return "through"


class GatedModel:
    """A priced model whose calls wait until the test opens them; it counts the calls in flight."""

    name = "scripted:gated"
    provider = "scripted"
    model = "gated"

    def __init__(self, tool: str | None = None) -> None:
        self.tool = tool
        self.in_flight = 0
        self.most = 0
        self.calls = 0
        self.open = asyncio.Event()

    async def complete(self, request: ModelRequest, *, on_chunk: Any = None) -> ModelResponse:
        self.calls += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.open.wait()
        finally:
            self.in_flight -= 1
        usage = Usage(input_tokens=50, output_tokens=4000)
        if self.tool is not None and request.turn == 0:
            return ModelResponse(tool_calls=(ToolCall(id="c0", name=self.tool, arguments={}),), usage=usage)
        return ModelResponse(text="done", usage=usage)

    async def aclose(self) -> None:
        return None


def _task_agent(model: Any, **kw: Any) -> AgentSpec:
    return AgentSpec(name="support", instructions="Answer customers.", model=model, isolation="task", **kw)


@pytest.mark.parametrize("concurrency", [1, 2, 5])
def test_concurrency_is_a_whole_number_from_one(concurrency: int) -> None:
    assert _task_agent(GatedModel(), concurrency=concurrency).concurrency == concurrency


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", 10_001])
def test_a_bad_concurrency_is_refused_naming_the_key(bad: Any) -> None:
    with pytest.raises(SpecError, match="concurrency="):
        _task_agent(GatedModel(), concurrency=bad)


async def test_an_agent_with_concurrency_n_has_n_runs_in_flight_and_no_more(tmp_path: Path) -> None:
    IN_GATE.clear()
    OPEN["gate"] = asyncio.Event()
    path = write_script(
        tmp_path,
        "gated",
        [{"tool_calls": [{"name": "gate", "arguments": {}}]}, {"text": "answered {task}"}],
    )
    spec = AgentSpec(
        name="support",
        instructions="Answer customers.",
        model=f"scripted:{path}",
        tools=[gate],
        isolation="task",
        concurrency=3,
    )
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        ids = [await node.submit("support", f"customer {i}") for i in range(5)]
        await wait_for(lambda: len(IN_GATE) == 3, timeout=10, what="three runs at the gate")
        await asyncio.sleep(0)  # one more turn of the loop: a fourth run would be here by now
        assert len(IN_GATE) == 3, "concurrency=3 never has a fourth run in flight"
        OPEN["gate"].set()
        results = [await node.result(i, timeout=10) for i in ids]
    assert [r.status for r in results] == ["succeeded"] * 5
    assert [r.output for r in results] == [f"answered customer {i}" for i in range(5)]
    assert len(IN_GATE) == 5
    assert len(calls_made(path)) == 10


async def test_budget_reservations_never_overspend_with_n_runs_in_flight(tmp_path: Path) -> None:
    # each call costs $0.04005 and reserves its worst case (~$0.042): a $0.10 cap fits two at once
    model = GatedModel()
    budget = Budget(per_day_usd=0.10, prices={"scripted:*": Price(input_per_mtok=1.0, output_per_mtok=10.0)})
    spec = _task_agent(model, budget=budget, concurrency=6, max_tokens=4096)
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        ids = [await node.submit("support", f"customer {i}") for i in range(6)]
        store = await open_store(f"sqlite:///{tmp_path}/j.db")
        try:

            async def running() -> int:
                return len(await store.list_runs(agent="support", status="running", limit=100))

            await wait_for(lambda: model.in_flight == 2, timeout=10, what="two calls in flight")
            for _ in range(50):  # all six runs are claimed; the other four wait for their reservation
                if await running() == 6:
                    break
                await asyncio.sleep(0.01)
            assert await running() == 6
            assert model.in_flight == 2, "a third worst case does not fit under the cap while two are held"
            model.open.set()
            results = [await node.result(i, timeout=10) for i in ids]
        finally:
            await store.close()
    statuses = sorted(r.status for r in results)
    assert statuses == ["paused"] * 4 + ["succeeded"] * 2
    assert model.most == 2 and model.calls == 2
    assert sum(r.cost_usd for r in results) == pytest.approx(0.0801)
    paused = [r for r in results if r.status == "paused"]
    assert all(isinstance(r.reason, OverBudget) and r.reason.spent <= 0.10 for r in paused)


async def test_n_runs_of_a_sigkilled_process_agent_all_finish_with_each_once_effect_once(
    store_url: str, tmp_path: Path
) -> None:
    script = write_script(tmp_path, "many", TEN_STEPS)
    run_ids = [f"many-{i}-{uuid.uuid4().hex}" for i in range(4)]
    for run_id in run_ids:
        ft.hold_file(run_id).write_text("lookup:hold-here")
    spec = AgentSpec(
        name="marketing",
        instructions="You run marketing.",
        model=f"scripted:{script}",
        tools=[ft.lookup, ft.save_note, ft.publish, ft.wire_money],
        isolation="process",
        concurrency=4,
    )
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        for run_id in run_ids:
            await node.submit("marketing", "Q3 launch", run_id=run_id)
        for run_id in run_ids:  # all four runs are held at once, in the one agent process
            await wait_for(ft.holding_file(run_id).exists, timeout=30, what=f"run {run_id} held")
        pids = {int(ft.holding_file(run_id).read_text()) for run_id in run_ids}
        assert len(pids) == 1 and os.getpid() not in pids
        assert len(calls_made(script)) == 4 * 6
        os.kill(pids.pop(), signal.SIGKILL)
        results = [await node.result(run_id, timeout=30) for run_id in run_ids]
    assert [r.status for r in results] == ["succeeded"] * 4
    assert [r.model_calls for r in results] == [10] * 4
    assert [r.replayed_calls for r in results] == [6] * 4
    assert len(calls_made(script)) == 4 * 10, "no run pays for a model call twice"
    for run_id in run_ids:
        published = [e for e in ft.effects(run_id) if e.startswith("publish ")]
        assert len(published) == 1, "every once effect happens once"


class WarmedModel(GatedModel):
    """A gated model with a warm-up (the SDK adapters import and open their client on a thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.open.set()
        self.warming: asyncio.Future[None] | None = None

    def warm(self) -> asyncio.Future[None]:
        self.warming = asyncio.get_running_loop().create_future()
        return self.warming


async def test_an_agent_starts_its_runs_once_its_model_has_warmed_up(tmp_path: Path) -> None:
    model = WarmedModel()
    spec = _task_agent(model, concurrency=2, budget=Budget(prices={"scripted:*": Price.free()}))
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        ids = [await node.submit("support", f"customer {i}") for i in range(2)]
        await wait_for(lambda: model.warming is not None, timeout=10, what="the warm-up started")
        with pytest.raises(TimeoutError):  # no run calls the model while it warms up
            await wait_for(lambda: model.calls > 0, timeout=1.0, what="a call before the warm-up ended")
        assert model.warming is not None
        model.warming.set_result(None)
        results = [await node.result(i, timeout=10) for i in ids]
    assert [r.status for r in results] == ["succeeded"] * 2
    assert model.calls == 2
