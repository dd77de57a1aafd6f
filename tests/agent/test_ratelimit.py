"""Provider rate limits shared through the store: a burst waits its turn (on the injected clock)
instead of meeting 429s, across agents, processes and nodes; a 429's Retry-After is learned."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from beamish import AgentSpec, SpecError
from beamish.agent._ratelimit import Permit, RateLimit, RateLimiter, limit_keys, set_rate_limits
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock, wait_for

from ._scripts import calls_made, write_script

pytestmark = pytest.mark.timeout(60)

#: The fake clock's wall time at its start.
T0 = FakeClock().time()


def _most_in_any_minute(times: list[float]) -> int:
    return max(sum(1 for u in times if t - 60 < u <= t) for t in times)


async def test_a_limit_of_r_requests_a_minute_is_never_exceeded_across_two_nodes(store_url: str) -> None:
    clock = FakeClock()
    stores = [await open_store(store_url, clock=clock) for _ in range(2)]
    try:
        await set_rate_limits(stores[0], {"anthropic:claude-x": RateLimit(requests_per_minute=5)})
        limiters = [RateLimiter(store, clock) for store in stores]  # one per node
        granted: list[Permit] = []

        async def call(n: int) -> None:
            permit = await limiters[n % 2].acquire("anthropic:claude-x", lambda: 100)
            assert permit is not None
            granted.append(permit)

        callers = asyncio.gather(*(call(n) for n in range(12)))
        await wait_for(
            lambda: clock.advance(0.5) or callers.done(), timeout=40, what="every call to be let through"
        )
        await callers
    finally:
        for store in stores:
            await store.close()
    times = [p.at - T0 for p in granted]
    assert len(times) == 12
    assert _most_in_any_minute(times) == 5, "five a minute, never six, from both nodes together"
    assert max(times) >= 120, "twelve calls at five a minute take three windows"


async def test_tokens_per_minute_hold_back_a_call_until_older_tokens_age_out(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await open_store(f"sqlite:///{tmp_path}/j.db", clock=clock)
    try:
        await set_rate_limits(store, {"openai": RateLimit(tokens_per_minute=1000)})
        limiter = RateLimiter(store, clock)
        first = await limiter.acquire("openai:gpt-x", lambda: 900)
        await limiter.settle(first, 600)  # it used less than it reserved: room for 400 more
        second = await limiter.acquire("openai:gpt-y", lambda: 400)  # the provider's limit covers both
        assert second is not None and second.at == T0
        clock.advance(10)
        waiting = asyncio.ensure_future(limiter.acquire("openai:gpt-x", lambda: 100))
        await wait_for(lambda: clock.sleepers > 0, what="the third call to wait")
        assert not waiting.done()
        clock.advance(50)  # the first call's 600 tokens age out at t = 60
        await wait_for(waiting.done, what="the third call")
        assert (await waiting).at == T0 + 60.0  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_a_learned_retry_after_holds_every_caller_of_the_model(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await open_store(f"sqlite:///{tmp_path}/j.db", clock=clock)
    try:
        limiters = [RateLimiter(store, clock) for _ in range(2)]
        assert await limiters[0].acquire("anthropic:claude-x", lambda: 1) is None  # no limit: no wait
        await limiters[0].learn("anthropic:claude-x", 30.0)
        waits: list[float] = []
        clock.advance(1.5)  # the other agent's cached view of the limits is refreshed
        waiting = asyncio.ensure_future(limiters[1].acquire("anthropic:claude-x", lambda: 1, waits.append))
        await wait_for(lambda: clock.sleepers > 0, what="the other agent to wait")
        assert waits == [pytest.approx(28.5)]
        clock.advance(28.5)
        await wait_for(waiting.done, what="the wait to end")
        assert (await waiting) is not None
    finally:
        await store.close()


async def test_an_agent_with_many_runs_waits_for_the_limit_instead_of_calling(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/j.db"
    path = write_script(tmp_path, "answers", [{"text": "answered {task}"}])
    spec = AgentSpec(
        name="support", instructions="x", model=f"scripted:{path}", isolation="task", concurrency=3
    )
    async with Node(store=url, clock=clock) as node:
        store = await open_store(url, clock=clock)
        try:
            await set_rate_limits(store, {"scripted": RateLimit(requests_per_minute=2)})
        finally:
            await store.close()
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        ids = [await node.submit("support", f"customer {i}") for i in range(3)]
        results = [asyncio.ensure_future(node.result(i, timeout=20)) for i in ids]
        await wait_for(lambda: sum(r.done() for r in results) == 2, timeout=10, what="two runs to finish")
        await wait_for(lambda: clock.sleepers > 0, what="the third run to wait for the limit")
        assert len(calls_made(path)) == 2, "the third call waits for the next minute"
        start = clock.time()
        await wait_for(
            lambda: clock.advance(1.0) or all(r.done() for r in results), timeout=15, what="the third run"
        )
        assert clock.time() - start >= 59, "the third call went out only once the first minute had passed"
        assert [(await r).status for r in results] == ["succeeded"] * 3
    assert len(calls_made(path)) == 3


def test_limit_keys_are_the_model_and_its_provider() -> None:
    assert limit_keys("anthropic:claude-x") == ("anthropic:claude-x", "anthropic")


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_a_bad_limit_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(SpecError, match="requests_per_minute="):
        RateLimit(requests_per_minute=bad)  # type: ignore[arg-type]
