"""Chaos: the primary provider (a local server speaking Anthropic's wire format, driven by the real
SDK) answers 529 overloaded to every request for minutes while a schedule fires every minute on a
fake clock. Every tick's run succeeds through the fallback (a local OpenAI-format server) within its
deadline; the shared circuit breaker opens, keeps later ticks off the sick provider, probes it, and
closes once it recovers; each run is priced by the model that answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from beamish import AgentSpec, Budget, Price, RetryPolicy
from beamish.agent._breaker import BreakerPolicy
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.schedule import Schedule, Scheduler, run_id_for
from beamish.testing import FakeClock, wait_for

from ._wire import Reply, WireServer, anthropic_error, anthropic_stream, openai_stream

pytestmark = pytest.mark.timeout(120)

PRIMARY, FALLBACK = "anthropic:claude-primary", "openai:gpt-fallback"
PRICES = {PRIMARY: Price(3.0, 15.0), FALLBACK: Price(0.5, 1.5)}
#: What one answer costs on each: Anthropic's stream says 11 in / 7 out, OpenAI's 20 in / 5 out.
COST = {PRIMARY: (11 * 3.0 + 7 * 15.0) / 1e6, FALLBACK: (20 * 0.5 + 5 * 1.5) / 1e6}
T0 = datetime(2026, 6, 1, 13, 59, 30, tzinfo=UTC)
DEADLINE_S = 30.0


class _Endless(list[Reply]):
    """A reply queue that never runs dry: each request gets ``make()``'s reply."""

    def __init__(self, make: Callable[[], Reply]) -> None:
        super().__init__()
        self.make = make

    def __bool__(self) -> bool:
        return True

    def pop(self, index: Any = -1) -> Reply:  # type: ignore[override]
        return self.make()


async def _pump(clock: FakeClock, done: asyncio.Future[Any]) -> None:
    """Let the run go, moving the fake clock only to the next short wait (a retry's backoff)."""

    def step() -> bool:
        if done.done():
            return True
        due = clock.next_deadline()
        if due is not None and 0 < due - clock.monotonic() <= 5.0:
            clock.advance(due - clock.monotonic())
        return False

    await wait_for(step, timeout=30, what="the tick's run to end")


async def test_every_tick_succeeds_through_the_fallback_while_the_primary_is_down(store_url: str) -> None:
    clock = FakeClock()
    clock.set_wall(T0.timestamp())
    url = store_url
    down = True
    async with WireServer() as anthropic, WireServer() as openai:

        def primary() -> Reply:
            return (
                anthropic_error(529, "overloaded_error") if down else Reply(events=anthropic_stream("posted"))
            )

        anthropic.replies = _Endless(primary)
        openai.replies = _Endless(lambda: Reply(events=openai_stream("posted via fallback")))
        spec = AgentSpec(
            name="poster",
            instructions="Post the update.",
            model=[PRIMARY, FALLBACK],
            model_options={
                PRIMARY: {"base_url": anthropic.url, "api_key": "test"},
                FALLBACK: {"base_url": f"{openai.url}/v1", "api_key": "test"},
            },
            isolation="task",
            budget=Budget(per_run_usd=1.0, prices=PRICES),
            retry=RetryPolicy(max_attempts=3, backoff_min_s=1.0, backoff_max_s=4.0, jitter=0.0),
            breaker=BreakerPolicy(failures=3, cooldown_s=90.0),
        )
        store = await open_store(url, clock=clock)
        async with Node(store=url, clock=clock) as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))

            async def submit(agent: str, task: Any, *, run_id: str) -> str:
                return await node.submit(agent, task, run_id)

            scheduler = Scheduler(store, submit, clock=clock)
            await scheduler.add("post", Schedule("* * * * *", deadline_s=DEADLINE_S), "poster", "post it")
            primary_calls: list[int] = []
            for minute in range(6):  # 14:00 … 14:05; the primary comes back at 14:03:30
                nominal = T0 + timedelta(seconds=30, minutes=minute)
                if minute == 4:
                    down = False
                clock.advance(nominal.timestamp() - clock.time())
                before = len(anthropic.requests)
                await scheduler.run_pass()
                rid = run_id_for("post", nominal)
                await _pump(clock, asyncio.ensure_future(node.result(rid, timeout=30)))
                primary_calls.append(len(anthropic.requests) - before)
            ticks = [T0 + timedelta(seconds=30, minutes=m) for m in range(6)]
            runs = [await store.get_run(run_id_for("post", tick)) for tick in ticks]
            answered = [(await store.steps(r.run_id))[-1].name for r in runs]
            ledger = await store.fetchall("SELECT run_id, model, amount_usd FROM ledger WHERE kind = 'spend'")
            kinds = [e.kind for _, e in await store.events() if e.kind.startswith("breaker.")]
            fallbacks = [e.data for _, e in await store.events() if e.kind == "model.fallback"]
        await store.close()

    assert [r.status for r in runs] == ["succeeded"] * 6, [r.reason for r in runs]
    for run in runs:
        assert run.updated_at <= run.meta["deadline"], "each run ended within its deadline"
        assert run.meta["deadline"] == pytest.approx(run.meta["due_at"] + DEADLINE_S)
    assert answered == [FALLBACK] * 4 + [PRIMARY] * 2, "the journal records the model that answered"
    # 14:00 spends its 3 attempts and opens the breaker; 14:01 and 14:03 skip the primary; 14:02's probe
    # fails (open again); 14:04's probe succeeds and closes it; 14:05 goes to the primary as usual
    assert primary_calls == [3, 0, 1, 0, 1, 1]
    assert kinds == ["breaker.opened", "breaker.opened", "breaker.closed"]
    assert [f["why"] for f in fallbacks] == [
        "its retries are spent",
        "its circuit breaker is open",
        "its circuit breaker opened",
        "its circuit breaker is open",
    ]
    for run, model in zip(runs, answered, strict=True):
        assert run.spend_usd == pytest.approx(COST[model]), "priced by the model that answered"
        rows = [r for r in ledger if r["run_id"] == run.run_id]
        assert [(r["model"], pytest.approx(r["amount_usd"])) for r in rows] == [(model, COST[model])]
