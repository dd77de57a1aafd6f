"""Budgets over the in-memory ledger: reservations, warnings, pauses, windows in their time zone."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from beamish import SpecError
from beamish._events import Event
from beamish.agent._budget import COMPANY, Budget, BudgetExceeded, Paused, window_bounds
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import MemoryLedger, PauseRecord
from beamish.agent._pricing import usd_to_nano
from beamish.testing import FakeClock, settle

pytestmark = pytest.mark.timeout(10)

CENT = usd_to_nano(0.01)


def keeper(clock: FakeClock, events: list[Event], **budgets: Budget) -> BudgetKeeper:
    company = budgets.pop("company", None)
    return BudgetKeeper(MemoryLedger(), clock, dict(budgets), company, events.append)


async def test_twenty_concurrent_runs_never_spend_past_the_agent_cap() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, writer=Budget(per_day_usd=1.0))
    rng = random.Random(7)

    async def run(n: int) -> None:
        for _ in range(50):
            try:
                r = await k.reserve("writer", f"run-{n}", 3 * CENT)
            except (BudgetExceeded, Paused):
                return
            await asyncio.sleep(0)  # the model call: every other run interleaves here
            await k.settle(r, rng.randint(1, 3 * CENT))

    await asyncio.gather(*(run(n) for n in range(20)))
    assert await k.spent_usd("writer", limit="per_day_usd") <= 1.0
    assert await k.paused("writer") is not None
    kinds = [e.kind for e in events]
    assert kinds.count("budget.exceeded") == 1
    assert "budget.warning" in kinds


async def test_warning_fires_once_at_eighty_percent() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=1.0))
    for _ in range(7):
        await k.settle(await k.reserve("a", "r", 10 * CENT), 10 * CENT)
    assert [e.kind for e in events] == []
    await k.settle(await k.reserve("a", "r", 10 * CENT), 10 * CENT)
    await k.settle(await k.reserve("a", "r", 10 * CENT), 10 * CENT)
    warnings = [e for e in events if e.kind == "budget.warning"]
    assert len(warnings) == 1
    assert warnings[0].data["limit"] == "total_usd"
    assert warnings[0].data["spent_usd"] == pytest.approx(0.8)


async def test_the_call_that_does_not_fit_pauses_the_agent_with_limit_and_spend() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=0.10))
    await k.settle(await k.reserve("a", "r1", 8 * CENT), 8 * CENT)
    with pytest.raises(BudgetExceeded) as info:
        await k.reserve("a", "r1", 3 * CENT)
    reason = info.value.refusal.reason()
    assert reason.limit == "agent.total_usd"
    assert reason.spent == pytest.approx(0.08)
    assert reason.cap == pytest.approx(0.10)
    exceeded = next(e for e in events if e.kind == "budget.exceeded")
    assert exceeded.subject == "a"
    assert exceeded.data["spent_usd"] == pytest.approx(0.08)
    assert exceeded.data["needed_usd"] == pytest.approx(0.03)
    # a paused agent starts no other run either
    with pytest.raises(Paused):
        await k.reserve("a", "r2", 1)


async def test_resume_lifts_the_pause() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=0.10))
    with pytest.raises(BudgetExceeded):
        await k.reserve("a", "r", 11 * CENT)
    assert await k.paused("a") is not None
    assert await k.resume("a") is True
    assert await k.paused("a") is None
    assert events[-1].kind == "agent.resumed"
    await k.settle(await k.reserve("a", "r", 5 * CENT), 5 * CENT)


async def test_raising_the_cap_lifts_the_pause() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(per_month_usd=0.10))
    with pytest.raises(BudgetExceeded):
        await k.reserve("a", "r", 11 * CENT)
    k.set_budget("a", Budget(per_month_usd=0.50))
    assert await k.paused("a") is None
    assert any(e.kind == "agent.resumed" and e.data["why"] == "cap raised" for e in events)


async def test_day_window_rolls_over_at_midnight_in_its_time_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    clock, events = FakeClock(), []
    clock.set_wall(datetime(2026, 3, 10, 23, 30, tzinfo=paris).timestamp())
    k = keeper(clock, events, a=Budget(per_day_usd=0.10, tz="Europe/Paris"))
    await k.settle(await k.reserve("a", "r", 9 * CENT), 9 * CENT)
    with pytest.raises(BudgetExceeded):
        await k.reserve("a", "r", 2 * CENT)
    # 23:50 in Paris is 22:50 UTC: still the same day there, still paused
    clock.advance(20 * 60)
    assert await k.paused("a") is not None
    # 00:00:01 in Paris (23:00:01 UTC, the same UTC day): a new window, the pause lifts
    clock.advance(10 * 60 + 1)
    assert await k.paused("a") is None
    assert await k.spent_usd("a", limit="per_day_usd") == 0.0
    await k.settle(await k.reserve("a", "r", 9 * CENT), 9 * CENT)
    assert any(e.data.get("why") == "window rolled over" for e in events)


def test_day_window_bounds_follow_daylight_saving() -> None:
    ny = ZoneInfo("America/New_York")
    at = datetime(2026, 3, 8, 12, 0, tzinfo=ny).timestamp()  # the spring-forward day: 23 hours
    start, end = window_bounds("per_day_usd", "America/New_York", at)
    assert start is not None and end is not None
    assert end - start == 23 * 3600
    m_start, m_end = window_bounds("per_month_usd", "America/New_York", at)
    assert m_start == datetime(2026, 3, 1, tzinfo=ny).timestamp()
    assert m_end == datetime(2026, 4, 1, tzinfo=ny).timestamp()


async def test_per_run_cap_pauses_the_run_not_the_agent() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(per_run_usd=0.05))
    await k.settle(await k.reserve("a", "r1", 4 * CENT), 4 * CENT)
    with pytest.raises(BudgetExceeded) as info:
        await k.reserve("a", "r1", 2 * CENT)
    assert info.value.refusal.scope == "run"
    assert await k.paused("a") is None
    assert await k.paused("a", "r1") is not None
    await k.settle(await k.reserve("a", "r2", 4 * CENT), 4 * CENT)  # the agent's next run goes ahead


async def test_company_cap_binds_every_agent_together() -> None:
    clock, events = FakeClock(), []
    k = keeper(
        clock, events, a=Budget(per_day_usd=1.0), b=Budget(per_day_usd=1.0), company=Budget(per_day_usd=0.10)
    )
    await k.settle(await k.reserve("a", "ra", 6 * CENT), 6 * CENT)
    with pytest.raises(BudgetExceeded) as info:
        await k.reserve("b", "rb", 5 * CENT)
    assert info.value.refusal.scope == "company"
    with pytest.raises(Paused):
        await k.reserve("a", "ra2", 1)
    assert await k.resume(COMPANY)


async def test_settling_the_same_step_twice_charges_once() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=1.0))
    r = await k.reserve("a", "r", 5 * CENT)
    await k.settle(r, 4 * CENT, seq=3)
    await k.settle(r, 4 * CENT, seq=3)
    assert await k.spent_usd("a") == pytest.approx(0.04)


async def test_a_call_blocked_by_reservations_waits_and_a_crashed_callers_one_expires() -> None:
    clock, events = FakeClock(), []
    k = BudgetKeeper(MemoryLedger(), clock, {"a": Budget(total_usd=0.10)}, reservation_ttl_s=60)
    await k.reserve("a", "r", 9 * CENT)  # never settled: its holder died
    waiting = asyncio.create_task(k.reserve("a", "r2", 9 * CENT))
    await settle()
    assert not waiting.done()  # spent is 0: no pause, only back-pressure
    assert await k.paused("a") is None
    clock.advance(61)
    reservation = await asyncio.wait_for(waiting, 2)
    await k.settle(reservation, 1)
    assert events == []


async def test_a_waiting_call_proceeds_as_soon_as_the_blocking_one_settles_cheaper() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=0.10))
    first = await k.reserve("a", "r1", 9 * CENT)
    waiting = asyncio.create_task(k.reserve("a", "r2", 9 * CENT))
    await asyncio.sleep(0)
    await k.settle(first, 1 * CENT)
    await k.settle(await asyncio.wait_for(waiting, 2), 1 * CENT)
    assert await k.spent_usd("a") == pytest.approx(0.02)


async def test_a_released_reservation_frees_its_money() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(total_usd=0.10))
    r = await k.reserve("a", "r", 9 * CENT)
    await k.release(r)
    await k.settle(await k.reserve("a", "r", 9 * CENT), 9 * CENT)


def test_pause_record_round_trips_through_json() -> None:
    record = PauseRecord("a", "budget", {"v": 1, "kind": "over_budget"}, "per_day_usd", 5, 99.0, "a", 1.0)
    assert PauseRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"per_day_usd": -1}, "per_day_usd"),
        ({"total_usd": 0}, "total_usd"),
        ({"per_run_usd": "5"}, "per_run_usd"),
        ({"tz": "Mars/Olympus"}, "Mars/Olympus"),
        ({"warn_at": 1.5}, "warn_at"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_key(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(SpecError, match=named):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_budget_from_config_names_an_unknown_key() -> None:
    with pytest.raises(SpecError, match="per_week_usd"):
        Budget.from_mapping({"per_week_usd": 3.0})


def test_budget_round_trips_through_json_prices_included() -> None:
    from beamish.agent._pricing import Price

    budget = Budget(per_day_usd=3.0, tz="Europe/Paris", prices={"scripted:*": Price.free()})
    again = Budget.from_mapping(budget.to_json())
    assert again == budget
    assert again.prices["scripted:*"] == Price.free()


def test_a_bad_price_inside_a_budget_is_named() -> None:
    with pytest.raises(SpecError, match="output_per_mtok"):
        Budget(prices={"openai:llama3": {"input_per_mtok": 1.0, "output_per_mtok": -2}})


async def test_resuming_an_agent_lifts_its_own_and_its_runs_pauses_only() -> None:
    clock, events = FakeClock(), []
    k = keeper(clock, events, a=Budget(per_run_usd=0.05), b=Budget(per_run_usd=0.05))
    for agent, run in (("a", "a1"), ("a", "a2"), ("b", "b1")):
        with pytest.raises(BudgetExceeded):
            await k.reserve(agent, run, 6 * CENT)
    assert await k.resume_agent("a") == 2
    assert await k.paused("a", "a1") is None and await k.paused("a", "a2") is None
    assert await k.paused("b", "b1") is not None
    assert [e.subject for e in events if e.kind == "run.resumed"] == ["run:a1", "run:a2"]


def test_a_budget_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(SpecError, match="version 2"):
        Budget.from_mapping({**Budget(total_usd=1.0).to_json(), "v": 2})
