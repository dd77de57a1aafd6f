"""Caps hold: a run never ends above its cap, a call that costs more than it reserved pauses its
agent at once, and the spend past every cap is recomputed from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, OverBudget
from beamish._exceptions import PauseRun
from beamish.agent._audit import audit_caps, audit_store
from beamish.agent._bound import request_tokens_bound
from beamish.agent._budget import Budget
from beamish.agent._guard import SemanticGuard
from beamish.agent._hooks import RunInfo
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import MemoryLedger
from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent._policy import Policy
from beamish.agent._pricing import Price, PriceBook
from beamish.agent._watchdog import Watchdog
from beamish.agent.models._protocol import ChunkCallback
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock

from .test_guard_agent import agent, call, calls_made, events_of, fetch, script

pytestmark = pytest.mark.timeout(30)

SONNET = Price(input_per_mtok=3.0, output_per_mtok=15.0)  # the demo's price


async def test_a_cap_two_calls_fit_ends_paused_at_or_below_it_when_the_third_call_grew(
    tmp_path: Path,
) -> None:
    # the demo's costly agent: each call's prompt is larger than the last ($0.066, $0.096, $0.126)
    turns = [
        {
            "text": "Working.",
            "tool_calls": [call("fetch", url=f"u{i}")],
            "usage": {"input_tokens": n, "output_tokens": 400},
        }
        for i, n in enumerate((20_000, 30_000, 40_000))
    ]
    path = script(tmp_path, "coo", [*turns, {"text": "Board updated.", "usage": {"input_tokens": 50_000}}])
    cap = 0.25  # the first two calls ($0.162) fit; the third would end at $0.288
    budget = Budget(per_day_usd=cap, prices={"scripted:*": SONNET})
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url, clock=FakeClock()) as node:
        await node.start_supervisor(SupervisorSpec([agent(path, name="coo", budget=budget).child_spec()]))
        result = await node.result(await node.submit("coo", "task board"), timeout=10)
    assert result.status == "paused"
    assert isinstance(result.reason, OverBudget) and result.reason.limit == "agent.per_day_usd"
    assert calls_made(path) == 2  # the third call's bound did not fit: it was never made
    assert result.cost_usd == pytest.approx(0.162)
    async with await open_store(url) as store:
        audit = await audit_store(store, {"coo": budget})
    assert audit.past_cap_usd == 0 and audit.breaches == [] and audit.windows == 1
    assert not await events_of(url, "budget.overshoot")


class Overbilling:
    """A model (a fake) that bills a million prompt tokens for whatever it is sent: more than any
    tokenizer can make of the request."""

    provider = "fake"
    model = "overbilling"
    name = "fake:overbilling"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkCallback | None = None
    ) -> ModelResponse:
        self.calls += 1
        assert request_tokens_bound(request) < 1_000_000
        return ModelResponse(
            text="Fetching.",
            tool_calls=(ToolCall(f"c{self.calls}", "fetch", {"url": "u"}),),
            usage=Usage(input_tokens=1_000_000, output_tokens=10),
            model=self.name,
        )

    async def aclose(self) -> None:
        return None


async def test_a_call_that_costs_more_than_it_reserved_is_recorded_and_pauses_the_agent_at_once(
    tmp_path: Path,
) -> None:
    model = Overbilling()
    budget = Budget(per_day_usd=100.0, prices={"fake:*": SONNET})
    spec = AgentSpec("scout", "You research.", model, tools=[fetch], budget=budget, isolation="task")
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url, clock=FakeClock()) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        first = await node.result(await node.submit("scout", "go"), timeout=10)
        assert first.status == "paused"
        reason = first.reason
        assert isinstance(reason, OverBudget) and reason.limit == "reservation"
        assert reason.spent == pytest.approx(3.00015) and 0 < reason.cap < 0.1
        assert model.calls == 1  # paused right after the step that overshot: no second call
        assert first.cost_usd == pytest.approx(3.00015)  # the step is journaled at its real cost
        # the whole agent is paused: its next run makes no call
        second = await node.result(await node.submit("scout", "again"), timeout=10)
        assert second.status == "paused" and model.calls == 1
        overshoot = await events_of(url, "budget.overshoot")
        assert len(overshoot) == 1
        assert overshoot[0]["cost_usd"] == pytest.approx(3.00015)
        assert 0 < overshoot[0]["reserved_usd"] < 0.1 and overshoot[0]["step"] == 0
        assert overshoot[0]["usage"]["input_tokens"] == 1_000_000 and overshoot[0]["paused"] == "scout"
        assert [e["cause"] for e in await events_of(url, "agent.paused")] == ["overshoot"]
        # only an operator lifts it; the model overbills again and the agent pauses again
        assert await node.resume("scout") >= 1
        again = await node.result(await node.submit("scout", "third"), timeout=10)
        assert again.status == "paused" and isinstance(again.reason, OverBudget)
        assert again.reason.limit == "reservation" and model.calls >= 2


RUN = RunInfo("a", "run-1", 0, "scripted:none.json")
SMALL = ModelRequest("s", (Message("user", "task"),), max_tokens=100)  # ~$0.002 reserved


async def _overbilled_call(budget: Budget) -> tuple[SemanticGuard, float]:
    """One call through a guard of agent "a" under ``budget``, billed $2 for 2M prompt tokens;
    returns the guard (its run still open) and the cost it reported."""
    clock = FakeClock()
    keeper = BudgetKeeper(MemoryLedger(), clock, {"a": budget})
    prices = PriceBook(budget.prices)
    guard = SemanticGuard(
        agent="a", keeper=keeper, prices=prices, watchdog=Watchdog(), policy=Policy(), clock=clock
    )
    await guard.before_run(RUN)
    token = await guard.before_model_call(RUN, SMALL)
    response = ModelResponse(text="hi", usage=Usage(input_tokens=2_000_000))
    return guard, await guard.after_model_call(RUN, SMALL, response, token)


async def test_an_overshoot_pause_outlives_the_window_and_lifts_only_on_resume() -> None:
    budget = Budget(per_day_usd=10.0, prices={"scripted:*": Price(1.0, 10.0)})
    guard, cost = await _overbilled_call(budget)
    assert cost == pytest.approx(2.0)
    with pytest.raises(PauseRun) as paused:
        await guard.after_step(RUN, "llm", "m", "hi", False)
    assert isinstance(paused.value.reason, OverBudget) and paused.value.reason.limit == "reservation"
    await guard.after_run(RUN, "paused")
    assert [e.kind for e in guard.drain_events()] == ["budget.overshoot", "agent.paused"]
    keeper, clock = guard.keeper, guard.clock
    clock.advance(3 * 86_400)  # type: ignore[attr-defined]  # a new day, a raised cap: neither lifts it
    keeper.set_budget("a", Budget(per_day_usd=1000.0, prices=budget.prices))
    record = await keeper.paused("a", "run-2")
    assert record is not None and record.cause == "overshoot"
    assert await keeper.resume_agent("a") == 1
    assert await keeper.paused("a", "run-2") is None


async def test_an_overshoot_without_any_cap_is_recorded_but_pauses_nothing() -> None:
    guard, _ = await _overbilled_call(Budget(prices={"scripted:*": Price(1.0, 10.0)}))  # prices only
    assert await guard.after_step(RUN, "llm", "m", "hi", False) is None
    await guard.after_run(RUN, "succeeded")
    events = guard.drain_events()
    assert [e.kind for e in events] == ["budget.overshoot"] and events[0].data["paused"] is None
    assert await guard.keeper.paused("a", "run-2") is None


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _row(agent: str, run_id: str, at: str, usd: float) -> dict[str, Any]:
    return {"agent": agent, "run_id": run_id, "at": _at(at), "amount_usd": usd}


def test_the_audit_sums_the_ledger_per_window_of_every_cap() -> None:
    rows = [
        _row("a", "r1", "2026-03-08T15:00:00", 0.6),
        _row("a", "r1", "2026-03-08T16:00:00", 0.6),  # r1: 1.2, 0.2 past a's per-run cap
        _row("a", "r2", "2026-03-09T03:00:00", 0.9),  # still 8 March in New York: the day is 2.1
        _row("a", "r3", "2026-03-09T15:00:00", 0.5),
        _row("b", "r4", "2026-03-10T12:00:00", 5.5),  # 0.5 past b's total
        _row("b", "r5", "2026-04-01T12:00:00", 1.0),  # b: 6.5 in total, 1.5 past
    ]
    budgets = {
        "a": Budget(per_run_usd=1.0, per_day_usd=2.0, tz="America/New_York"),
        "b": Budget(total_usd=5.0),
        "c": Budget(per_month_usd=1.0),  # no spend: nothing to check
    }
    company = Budget(per_month_usd=6.0)  # March: 8.1, 2.1 past; April: 1.0
    audit = audit_caps(rows, budgets, company)
    assert audit.past_cap_usd == pytest.approx(0.2 + 0.1 + 1.5 + 2.1)
    assert len(audit.breaches) == 4
    assert "run r1 of agent 'a'" in audit.breaches[0]
    assert any("agent 'a' on 2026-03-08 (America/New_York)" in b for b in audit.breaches)
    assert any("the company on 2026-03 (UTC)" in b for b in audit.breaches)
    assert audit.windows == 3 + 2 + 1 + 2  # a's runs, a's days, b's total, the company's months


def test_the_audit_of_spend_within_every_cap_is_zero() -> None:
    rows = [_row("a", "r1", "2026-03-08T15:00:00", 0.5), _row("a", "r2", "2026-03-08T16:00:00", 0.5)]
    audit = audit_caps(rows, {"a": Budget(per_run_usd=0.5, per_day_usd=1.0)}, Budget(total_usd=1.0))
    assert audit.past_cap_usd == 0 and audit.breaches == [] and audit.windows == 4
