"""The guard on its own, hook by hook: what each policy does, caps at the next step, pricing."""

from __future__ import annotations

import pytest

from beamish import Looping, OverBudget
from beamish._exceptions import AbortRun, PauseRun
from beamish.agent._bound import request_tokens_bound
from beamish.agent._budget import Budget
from beamish.agent._guard import Escalated, SemanticGuard
from beamish.agent._hooks import RunInfo
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import MemoryLedger
from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent._policy import Policy
from beamish.agent._pricing import Price, PriceBook
from beamish.agent._watchdog import Watchdog
from beamish.testing import FakeClock, settle

pytestmark = pytest.mark.timeout(10)

MODEL = "scripted:test.json"


def guard(policy: Policy | None = None, budget: Budget | None = None, **watch: object) -> SemanticGuard:
    clock = FakeClock()
    budget = budget or Budget(per_run_usd=1.0, prices={"scripted:*": Price(1.0, 10.0)})
    keeper = BudgetKeeper(MemoryLedger(), clock, {"a": budget})
    return SemanticGuard(
        agent="a",
        keeper=keeper,
        prices=PriceBook(budget.prices),
        watchdog=Watchdog(**watch),  # type: ignore[arg-type]
        policy=policy or Policy(),
        clock=clock,
    )


def info(seq: int, replaying: bool = False) -> RunInfo:
    return RunInfo("a", "run-1", seq, MODEL, replaying)


REQUEST = ModelRequest(system="s", messages=(Message("user", "task"),), max_tokens=1000)


async def test_a_model_call_is_priced_and_its_cost_returned_for_the_journal() -> None:
    g = guard()
    await g.before_run(info(0))
    token = await g.before_model_call(info(0), REQUEST)
    response = ModelResponse(text="hi", usage=Usage(input_tokens=1000, output_tokens=100))
    assert await g.after_model_call(info(0), REQUEST, response, token) == pytest.approx(0.002)
    assert await g.keeper.spent_usd("a", "run-1", "per_run_usd") == pytest.approx(0.002)


async def test_budget_policy_stop_ends_the_run_and_escalate_hands_it_to_the_supervisor() -> None:
    tiny = Budget(per_run_usd=0.001, prices={"scripted:*": Price(1.0, 10.0)})
    for action, raised in (("pause", PauseRun), ("stop", AbortRun), ("escalate", Escalated)):
        g = guard(Policy(on_budget=action), tiny)  # type: ignore[arg-type]
        await g.before_run(info(0))
        with pytest.raises(raised) as exc:  # type: ignore[call-overload]
            await g.before_model_call(info(0), REQUEST)
        assert isinstance(exc.value.reason, OverBudget)
        assert [e.kind for e in g.drain_events()] == ["budget.exceeded", "run.paused"]


async def test_loop_policy_stop_skips_the_pause_rung() -> None:
    g = guard(Policy(on_loop="stop"))
    await g.before_run(info(0))
    nudge = None
    for seq in range(1, 5):
        nudge = await g.after_step(info(seq), "tool", "search", "none", False)
    assert nudge is not None and "stuck" in nudge
    with pytest.raises(AbortRun) as exc:
        await g.after_step(info(5), "tool", "search", "none", False)
    assert isinstance(exc.value.reason, Looping)


async def test_a_replayed_pause_decision_is_not_taken_again() -> None:
    g = guard()
    await g.before_run(info(0))
    for seq in range(1, 6):  # the journal shows: 4 repeats, the nudge, a 5th repeat (then it paused)
        await g.after_step(info(seq, replaying=True), "tool", "search", "none", False)
    assert g.drain_events() == []
    with pytest.raises(AbortRun):  # looping again after the resume: the ladder's last rung
        await g.after_step(info(6), "tool", "search", "none", False)


async def test_the_wall_clock_cap_ends_the_run_at_its_next_step() -> None:
    g = guard(max_wall_s=100, hang_after_s=None)
    await g.before_run(info(0))
    clock = g.clock
    assert isinstance(clock, FakeClock)
    await settle()
    await clock.jump(101)
    with pytest.raises(AbortRun) as exc:
        await g.after_step(info(1), "tool", "fetch", "page", False)
    assert isinstance(exc.value.reason, Looping) and exc.value.reason.pattern == "max_wall_s"
    assert [e.kind for e in g.drain_events()] == ["watchdog.cap_reached"]


async def test_a_hang_calls_the_bound_process_failure() -> None:
    g = guard(hang_after_s=30)
    failures: list[object] = []
    g.on_process_failure = failures.append
    await g.before_run(info(0))
    await settle()
    await g.clock.jump(31)  # type: ignore[attr-defined]
    await settle()
    assert len(failures) == 1
    assert [e.kind for e in g.drain_events()] == ["watchdog.hung"]


def test_the_prompt_bound_counts_every_byte_and_a_margin() -> None:
    call = ToolCall("c1", "fetch", {"url": "https://example.com/ü"})
    request = ModelRequest(
        system="sys",
        messages=(Message("user", "héllo"), Message("assistant", "", tool_calls=(call,))),
        max_tokens=10,
    )
    assert request_tokens_bound(request) >= len("sys") + len("héllo".encode()) + len(
        '{"url": "https://example.com/\\u00fc"}'
    )


async def test_a_run_whose_agent_crashed_is_not_reported_hung_later() -> None:
    import asyncio

    g = guard(hang_after_s=30)
    failures: list[object] = []
    g.on_process_failure = failures.append

    async def run_that_crashes() -> None:
        await g.before_run(info(0))
        raise RuntimeError("the agent crashed mid-run; after_run never ran")

    with pytest.raises(RuntimeError):
        await asyncio.create_task(run_that_crashes())
    await settle()
    await g.clock.jump(31)  # type: ignore[attr-defined]
    assert failures == []
    assert g.drain_events() == []
