"""Budgets over the journal's store, on SQLite and PostgreSQL: pauses that survive a restart,
resume, windows in their time zone, and reservations that hold across concurrent writers."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from beamish._events import Event
from beamish.agent._budget import Budget, BudgetExceeded, Paused
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._pricing import usd_to_nano
from beamish.agent._store_ledger import StoreLedger
from beamish.journal import open_store
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(45)

CENT = usd_to_nano(0.01)


async def test_pause_survives_a_restart_and_resume_lifts_it(store_url: str) -> None:
    clock, events = FakeClock(), []
    store = await open_store(store_url, clock=clock)
    k = BudgetKeeper(StoreLedger(store), clock, {"cfo": Budget(per_day_usd=0.10)}, None, events.append)
    await k.settle(await k.reserve("cfo", "r1", 9 * CENT), 9 * CENT)
    with pytest.raises(BudgetExceeded):
        await k.reserve("cfo", "r1", 2 * CENT)
    await store.close()

    # the node restarts: a fresh store connection and a fresh keeper know the agent is paused
    store = await open_store(store_url, clock=clock)
    try:
        k2 = BudgetKeeper(StoreLedger(store), clock, {"cfo": Budget(per_day_usd=0.10)}, None, events.append)
        record = await k2.paused("cfo")
        assert record is not None and record.cause == "budget"
        assert record.reason["kind"] == "over_budget"
        assert record.reason["spent"] == pytest.approx(0.09)
        with pytest.raises(Paused):
            await k2.reserve("cfo", "r2", 1 * CENT)
        assert await k2.resume("cfo")
        assert await k2.paused("cfo") is None
        reservation = await k2.reserve("cfo", "r2", 1 * CENT)
        await k2.settle(reservation, 1 * CENT)
        assert await k2.spent_usd("cfo", limit="per_day_usd") == pytest.approx(0.10)
    finally:
        await store.close()


async def test_day_window_rolls_over_in_its_time_zone_on_the_store(store_url: str) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    clock = FakeClock()
    clock.set_wall(datetime(2026, 5, 1, 23, 0, tzinfo=tokyo).timestamp())
    async with await open_store(store_url, clock=clock) as store:
        k = BudgetKeeper(StoreLedger(store), clock, {"a": Budget(per_day_usd=0.05, tz="Asia/Tokyo")})
        await k.settle(await k.reserve("a", "r", 5 * CENT), 5 * CENT)
        with pytest.raises(BudgetExceeded):
            await k.reserve("a", "r", 1)
        clock.advance(59 * 60)  # 23:59 in Tokyo
        assert await k.paused("a") is not None
        clock.advance(61)  # 00:00:01 in Tokyo, 15:00 UTC the day before: a new Tokyo day
        assert await k.paused("a") is None
        assert await k.spent_usd("a", limit="per_day_usd") == 0.0
        assert await k.spent_usd("a", limit="total_usd") == pytest.approx(0.05)


async def test_journaled_step_spend_is_counted_once(store_url: str) -> None:
    clock = FakeClock()
    async with await open_store(store_url, clock=clock) as store:
        run, _ = await store.create_run("a", "task", run_id="run-1")
        epoch = await store.claim_run("run-1", "node-1")
        k = BudgetKeeper(StoreLedger(store), clock, {"a": Budget(total_usd=1.0)})
        reservation = await k.reserve("a", "run-1", 10 * CENT)
        await store.record_step(
            "run-1", 0, epoch, kind="llm", phase="done", request={"q": 1}, response={"a": 1}, cost_usd=0.04
        )
        await k.settle(reservation, 4 * CENT, seq=0)
        await k.settle(reservation, 4 * CENT, seq=0)
        assert await k.spent_usd("a") == pytest.approx(0.04)
        assert run.run_id == "run-1"


async def test_twenty_concurrent_runs_on_two_nodes_never_spend_past_the_cap(store_url: str) -> None:
    clock = FakeClock()
    cap = Budget(per_day_usd=0.50)
    stores = [await open_store(store_url, clock=clock, pool_size=4) for _ in range(2)]
    try:
        keepers = [BudgetKeeper(StoreLedger(s), clock, {"writer": cap}, poll_s=0.01) for s in stores]
        rng = random.Random(3)
        calls = 0

        async def run(n: int) -> None:
            nonlocal calls
            k = keepers[n % 2]  # ten runs on each node
            while True:
                try:
                    r = await k.reserve("writer", f"run-{n}", 3 * CENT)
                except (BudgetExceeded, Paused):
                    return
                calls += 1
                await asyncio.sleep(0)
                await k.settle(r, rng.randint(CENT, 3 * CENT))

        await asyncio.wait_for(asyncio.gather(*(run(n) for n in range(20))), 40)
        spent = await keepers[0].spent_usd("writer", limit="per_day_usd")
        assert spent <= 0.50
        assert spent > 0.40  # it really spent up to the cap, one worst case short at most
        assert calls >= 17
        assert await keepers[1].paused("writer") is not None
    finally:
        for s in stores:
            await s.close()


async def test_company_pause_is_seen_by_every_agent_after_a_restart(store_url: str) -> None:
    clock = FakeClock()
    budgets = {"a": Budget(total_usd=5.0), "b": Budget(total_usd=5.0)}
    async with await open_store(store_url, clock=clock) as store:
        k = BudgetKeeper(StoreLedger(store), clock, budgets, Budget(per_month_usd=0.10))
        await k.settle(await k.reserve("a", "ra", 8 * CENT), 8 * CENT)
        with pytest.raises(BudgetExceeded) as info:
            await k.reserve("b", "rb", 5 * CENT)
        assert info.value.refusal.scope == "company"
    async with await open_store(store_url, clock=clock) as store:
        events: list[Event] = []
        k = BudgetKeeper(StoreLedger(store), clock, budgets, Budget(per_month_usd=0.20), events.append)
        # the company cap was raised in the new config: the pause lifts by itself
        assert await k.paused("a") is None
        assert [e.data["why"] for e in events] == ["cap raised"]


async def test_a_journaled_call_needs_no_settling_write(store_url: str) -> None:
    clock = FakeClock()
    async with await open_store(store_url, clock=clock) as store:
        await store.create_run("a", "task", run_id="run-1")
        epoch = await store.claim_run("run-1", "node-1")
        k = BudgetKeeper(StoreLedger(store), clock, {"a": Budget(total_usd=0.12)}, poll_s=0.01)
        held = await k.reserve("a", "run-1", 10 * CENT, seq=0)
        blocked = asyncio.create_task(k.reserve("a", "run-2", 5 * CENT))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # 10 cents held for the call in flight
        # the journal records the step with its real cost; settling it writes nothing
        await store.record_step("run-1", 0, epoch, kind="llm", phase="done", request={}, cost_usd=0.04)
        await k.settle(held, 4 * CENT, seq=0)
        second = await asyncio.wait_for(blocked, 5)
        assert await k.spent_usd("a") == pytest.approx(0.04)
        rows = await store.fetchall(
            "SELECT amount_nano, seq FROM budget_reservations r WHERE NOT EXISTS (SELECT 1 FROM ledger l "
            "WHERE l.kind = 'spend' AND l.run_id = r.run_id AND l.seq = r.seq)"
        )
        assert [(r["amount_nano"], r["seq"]) for r in rows] == [(5 * CENT, None)]  # only run-2's counts
        assert second.amount == 5 * CENT


async def test_local_reservations_hold_the_cap_for_twenty_concurrent_runs(store_url: str) -> None:
    clock = FakeClock()
    async with await open_store(store_url, clock=clock, pool_size=4) as store:
        k = BudgetKeeper(StoreLedger(store, reservations="local"), clock, {"w": Budget(per_day_usd=0.30)})
        rng = random.Random(5)

        async def run(n: int) -> None:
            while True:
                try:
                    r = await k.reserve("w", f"run-{n}", 3 * CENT)
                except (BudgetExceeded, Paused):
                    return
                await asyncio.sleep(0)
                await k.settle(r, rng.randint(CENT, 3 * CENT))

        await asyncio.wait_for(asyncio.gather(*(run(n) for n in range(20))), 30)
        assert 0.25 < await k.spent_usd("w", limit="per_day_usd") <= 0.30
        assert await store.fetchone("SELECT 1 AS x FROM budget_reservations") is None  # none written


async def test_local_reservation_of_a_journaled_call_stops_counting_when_journaled(store_url: str) -> None:
    clock = FakeClock()
    async with await open_store(store_url, clock=clock) as store:
        await store.create_run("a", "task", run_id="run-1")
        epoch = await store.claim_run("run-1", "node-1")
        k = BudgetKeeper(StoreLedger(store, reservations="local"), clock, {"a": Budget(total_usd=0.12)})
        held = await k.reserve("a", "run-1", 10 * CENT, seq=0)
        with pytest.raises(BudgetExceeded):
            await k.reserve("a", "run-2", 13 * CENT)  # more than the cap: refused outright
        await k.resume("a")
        await store.record_step("run-1", 0, epoch, kind="llm", phase="done", request={}, cost_usd=0.04)
        await k.settle(held, 4 * CENT, seq=0)
        await k.settle(await k.reserve("a", "run-2", 8 * CENT), 8 * CENT)
        assert await k.spent_usd("a") == pytest.approx(0.12)


def test_a_store_ledger_refuses_an_unknown_reservation_mode() -> None:
    from beamish import SpecError

    with pytest.raises(SpecError, match="reservations='disk'"):
        StoreLedger(object(), reservations="disk")


async def test_company_budget_is_stored_for_every_process_to_read(store_url: str) -> None:
    from beamish.agent._budget import load_company_budget, set_company_budget

    async with await open_store(store_url) as store:
        assert await load_company_budget(store) is None
        await set_company_budget(store, Budget(per_month_usd=300.0, tz="Europe/Paris"))
        await set_company_budget(store, Budget(per_month_usd=250.0, tz="Europe/Paris"))
    async with await open_store(store_url) as store:
        assert await load_company_budget(store) == Budget(per_month_usd=250.0, tz="Europe/Paris")
        await set_company_budget(store, None)
        assert await load_company_budget(store) is None


async def test_resuming_an_agent_lifts_its_run_pauses_on_the_store(store_url: str) -> None:
    clock = FakeClock()
    async with await open_store(store_url, clock=clock) as store:
        k = BudgetKeeper(StoreLedger(store), clock, {"a": Budget(per_run_usd=0.05)})
        with pytest.raises(BudgetExceeded):
            await k.reserve("a", "r1", 6 * CENT)
        assert await k.paused("a", "r1") is not None
        assert await k.resume_agent("a") == 1
        assert await k.paused("a", "r1") is None


async def test_each_window_sums_only_its_own_rows_through_an_index(store_url: str) -> None:
    from beamish.agent._ledger import Window
    from beamish.agent._store_ledger import _StoreTx

    day = 1_780_000_000.0
    rows = [  # (at, agent, run_id, usd)
        (day - 7200, "a", "r1", 0.5),  # a's run r1, the day before
        (day + 10, "a", "r1", 0.25),
        (day + 20, "a", "r2", 0.125),
        (day + 30, "b", "r3", 1.0),
    ]
    async with await open_store(store_url) as store:
        for i, (at, agent, run_id, usd) in enumerate(rows):
            await store.execute(
                "INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, note) "
                "VALUES (?, ?, ?, ?, 'spend', ?, '')",
                (at, agent, run_id, i, usd),
            )
        await store.execute(
            "INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, note) "
            "VALUES (?, 'a', 'r1', 9, 'grant', 100.0, '')",
            (day + 40,),
        )
        windows = [
            Window("a", "r1", None, None, 1, "per_run_usd", 0.8),
            Window("a", None, day, day + 86_400, 1, "per_day_usd", 0.8),
            Window(None, None, day, day + 86_400, 1, "per_day_usd", 0.8),
            Window("a", None, None, None, 1, "total_usd", 0.8),
        ]
        sums = await store.read(lambda tx: _StoreTx(tx, store).spent_all(windows))
        assert sums == [usd_to_nano(v) for v in (0.75, 0.375, 1.375, 0.875)]
        if store.dialect == "sqlite":  # the planner's choice, which SQLite makes without statistics
            plans: list[str] = []

            class Explain:
                def __init__(self, tx: Any) -> None:
                    self.tx = tx

                def fetchone(self, sql: str, params: Any = ()) -> Any:
                    plans.extend(r["detail"] for r in self.tx.fetchall("EXPLAIN QUERY PLAN " + sql, params))
                    return self.tx.fetchone(sql, params)

            await store.read(lambda tx: _StoreTx(Explain(tx), store).spent_all(windows))
            searches = [p for p in plans if p.startswith("SEARCH")]
            assert searches == [
                "SEARCH ledger USING INDEX ledger_run (run_id=?)",
                "SEARCH ledger USING INDEX ledger_agent_at (agent=? AND at>? AND at<?)",
                "SEARCH ledger USING INDEX budget_ledger_kind_at (kind=? AND at>? AND at<?)",
                "SEARCH ledger USING INDEX ledger_agent_at (agent=?)",
            ]


async def test_a_reservation_expires_on_the_databases_clock_not_a_skewed_nodes(pg_url: str) -> None:
    """Node A reserves for a minute; node B's clock runs five minutes ahead. On PostgreSQL the expiry
    is decided on the database's clock, so B still counts A's money as held (on B's own clock the
    reservation ran out four minutes ago, and B would spend it again)."""
    import time

    from beamish.agent._ledger import Window
    from beamish.agent._store_ledger import _StoreTx

    async with await open_store(pg_url) as store:
        await store.execute("DELETE FROM budget_reservations WHERE agent = 'skewed'")
        a = BudgetKeeper(StoreLedger(store), FakeClock(wall_start=time.time()), reservation_ttl_s=60)
        reservation = await a.reserve("skewed", "r1", 9 * CENT)
        window = Window("skewed", None, None, None, 10 * CENT, "total_usd", 0.8)
        ahead = time.time() + 300
        held = await store.read(lambda tx: _StoreTx(tx, store).held(window, ahead))
        assert held == 9 * CENT
        await a.settle(reservation, 9 * CENT)


async def test_held_counts_a_reservation_until_the_journal_records_its_step_probing_by_run(
    store_url: str,
) -> None:
    from beamish.agent._ledger import Window
    from beamish.agent._store_ledger import _JOURNALED, _StoreTx

    async with await open_store(store_url) as store:
        for i, run_id in enumerate(("r1", "r2")):
            await store.execute(
                "INSERT INTO budget_reservations (id, agent, run_id, amount_nano, at, expires_at, seq) "
                "VALUES (?, 'a', ?, ?, 10.0, 1000.0, 0)",
                (f"res-{i}", run_id, (i + 1) * CENT),
            )
        await store.execute(  # r1's step is journaled: its reservation no longer counts
            "INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, note) "
            "VALUES (11.0, 'a', 'r1', 0, 'spend', 0.01, '')"
        )
        windows = [Window("a", None, None, None, 1, "total_usd", 0.8)]
        assert await store.read(lambda tx: _StoreTx(tx, None).held_all(windows, 20.0)) == [2 * CENT]
        # the bound still counts it: it may only ever be more than what is held
        assert await store.read(lambda tx: _StoreTx(tx, None).held_bound_all(windows, 20.0)) == [3 * CENT]
        if store.dialect == "sqlite":
            probe = f"SELECT 1 FROM budget_reservations r WHERE NOT EXISTS ({_JOURNALED})"
            plan = await store.read(
                lambda tx: [r["detail"] for r in tx.fetchall("EXPLAIN QUERY PLAN " + probe)]
            )
            # a run's few rows, not every spend row of the ledger for each reservation
            assert "SEARCH l USING INDEX ledger_run (run_id=?)" in plan
