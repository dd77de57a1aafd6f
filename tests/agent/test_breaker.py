"""Circuit breakers per provider:model, kept in the store: closed → open after N failed attempts in a
row → half-open after the cool-down with one probe (one caller, whichever node) → closed on success,
open again on a failed probe. Every backend, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from beamish import SpecError
from beamish.agent._breaker import Breaker, BreakerPolicy, breaker_states
from beamish.journal import open_store
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(60)

KEY = "anthropic:claude-x"
POLICY = BreakerPolicy(failures=3, cooldown_s=30.0, probe_timeout_s=60.0)


async def _kinds(store: object, prefix: str = "breaker.") -> list[str]:
    events = await store.events()  # type: ignore[attr-defined]
    return [e.kind for _, e in events if e.kind.startswith(prefix)]


async def test_a_breaker_opens_after_n_failures_in_a_row_probes_once_and_closes(store_url: str) -> None:
    clock = FakeClock()
    store = await open_store(store_url, clock=clock)
    try:
        breaker = Breaker(store, clock, POLICY, owner="a")
        assert await breaker.admit(KEY) == "closed"
        assert await breaker.failed(KEY, "529 overloaded") is False
        assert await breaker.failed(KEY, "529 overloaded") is False
        assert await breaker.admit(KEY) == "closed", "two failures of three: still closed"
        assert await breaker.failed(KEY, "529 overloaded") is True
        assert await breaker.admit(KEY) == "open"
        assert await _kinds(store) == ["breaker.opened"]

        clock.advance(29.0)
        assert await breaker.admit(KEY) == "open", "still cooling down"
        clock.advance(1.0)
        assert await breaker.admit(KEY) == "probe", "after the cool-down: one probe"
        assert await breaker.admit(KEY) == "open", "the others keep to the fallback while it probes"
        (state,) = await breaker_states(store)
        assert state.state == "half_open"

        await breaker.succeeded(KEY)
        assert await breaker.admit(KEY) == "closed"
        assert await breaker_states(store) == []
        assert await _kinds(store) == ["breaker.opened", "breaker.closed"]
    finally:
        await store.close()


async def test_a_failed_probe_opens_it_again_for_another_cool_down(store_url: str) -> None:
    clock = FakeClock()
    store = await open_store(store_url, clock=clock)
    try:
        breaker = Breaker(store, clock, POLICY)
        for _ in range(3):
            await breaker.failed(KEY, "500")
        clock.advance(30.0)
        assert await breaker.admit(KEY) == "probe"
        assert await breaker.failed(KEY, "500") is True
        assert await breaker.admit(KEY) == "open"
        clock.advance(29.0)
        assert await breaker.admit(KEY) == "open", "the cool-down starts again at the failed probe"
        clock.advance(1.0)
        assert await breaker.admit(KEY) == "probe"
        events = [e for _, e in await store.events() if e.kind == "breaker.opened"]
        assert [e.data["probe_failed"] for e in events] == [False, True]
    finally:
        await store.close()


async def test_a_success_forgives_earlier_failures(store_url: str) -> None:
    clock = FakeClock()
    store = await open_store(store_url, clock=clock)
    try:
        breaker = Breaker(store, clock, POLICY)
        for _ in range(2):
            await breaker.failed(KEY, "timeout")
        assert await breaker.admit(KEY) == "closed"
        await breaker.succeeded(KEY)
        for _ in range(2):
            await breaker.failed(KEY, "timeout")
        assert await breaker.admit(KEY) == "closed", "not five in a row: the success broke the run"
        assert await _kinds(store) == []
    finally:
        await store.close()


async def test_a_probe_that_never_reports_is_handed_to_another_caller(store_url: str) -> None:
    clock = FakeClock()
    store = await open_store(store_url, clock=clock)
    try:
        breaker = Breaker(store, clock, POLICY)
        for _ in range(3):
            await breaker.failed(KEY, "500")
        clock.advance(30.0)
        assert await breaker.admit(KEY) == "probe"  # and its caller dies
        clock.advance(59.0)
        assert await breaker.admit(KEY) == "open"
        clock.advance(1.0)
        assert await breaker.admit(KEY) == "probe"
    finally:
        await store.close()


async def test_the_breaker_is_shared_by_every_node_on_the_store_and_only_one_probes(store_url: str) -> None:
    """Two nodes (two stores on one database): failures seen by either count together, the open
    breaker is seen by both, and of many callers at the end of the cool-down exactly one probes."""
    clock = FakeClock()
    stores = [await open_store(store_url, clock=clock) for _ in range(2)]
    try:
        breakers = [Breaker(s, clock, POLICY, owner=f"node{i}") for i, s in enumerate(stores)]
        await breakers[0].failed(KEY, "529")
        await breakers[1].failed(KEY, "529")
        assert await breakers[0].failed(KEY, "529") is True
        assert await breakers[1].admit(KEY) == "open", "the other node sees it open"
        clock.advance(30.0)
        admissions = await asyncio.gather(*(breakers[n % 2].admit(KEY) for n in range(10)))
        assert sorted(admissions) == ["open"] * 9 + ["probe"]
        prober = breakers[admissions.index("probe") % 2]
        await prober.succeeded(KEY)
        assert await breakers[0].admit(KEY) == await breakers[1].admit(KEY) == "closed"
    finally:
        for store in stores:
            await store.close()


def test_a_breaker_policy_names_its_bad_value() -> None:
    with pytest.raises(SpecError, match="failures"):
        BreakerPolicy(failures=0)
    with pytest.raises(SpecError, match="cooldown_s"):
        BreakerPolicy(cooldown_s=-1)
    with pytest.raises(SpecError, match="unknown keys"):
        BreakerPolicy.from_mapping({"failure": 3})
    assert BreakerPolicy.from_mapping(POLICY.to_json()) == POLICY


async def test_a_clean_breaker_is_trusted_briefly_and_a_local_failure_ends_the_trust(store_url: str) -> None:
    """A model seen closed and clean costs no store read per call for ``CLEAN_TRUST_S``: another
    node's opening is seen once that ends; a failure seen here ends it at once."""
    from beamish.agent._breaker import CLEAN_TRUST_S

    clock = FakeClock()
    stores = [await open_store(store_url, clock=clock) for _ in range(2)]
    try:
        here, there = (Breaker(s, clock, POLICY, owner=f"node{i}") for i, s in enumerate(stores))
        assert await here.admit(KEY) == "closed"
        for _ in range(3):
            await there.failed(KEY, "529")
        assert await there.admit(KEY) == "open"
        assert await here.admit(KEY) == "closed", "trusted: not read again yet"
        clock.advance(CLEAN_TRUST_S)
        assert await here.admit(KEY) == "open", "the trust ended: the open breaker is seen"

        clock.advance(POLICY.cooldown_s)
        assert await there.admit(KEY) == "probe"
        await there.succeeded(KEY)
        assert await here.admit(KEY) == "closed"
        await here.failed(KEY, "timeout")
        for _ in range(2):
            await there.failed(KEY, "timeout")
        assert await here.admit(KEY) == "open", "a failure seen here: read again at once"
    finally:
        for store in stores:
            await store.close()
