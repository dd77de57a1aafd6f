"""Property: after any sequence of kills, restart counts and start order follow the strategy exactly."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamish import ChildSpec, Node, Shutdown, SupervisorSpec

from ._actors import Journal, Worker

N = 4


def expected_restarts(strategy: str, victims: list[int]) -> list[int]:
    counts = [0] * N
    for v in victims:
        if strategy == "one_for_one":
            counts[v] += 1
        elif strategy == "one_for_all":
            counts = [c + 1 for c in counts]
        else:  # rest_for_one
            counts = [c + 1 if i >= v else c for i, c in enumerate(counts)]
    return counts


def expected_inits(strategy: str, victims: list[int]) -> list[str]:
    inits = [str(i) for i in range(N)]
    for v in victims:
        if strategy == "one_for_one":
            inits.append(str(v))
        elif strategy == "one_for_all":
            inits += [str(i) for i in range(N)]
        else:
            inits += [str(i) for i in range(v, N)]
    return inits


async def run(strategy: str, victims: list[int]) -> None:
    journal = Journal()
    async with Node() as node:
        spec = SupervisorSpec(
            [ChildSpec(i, Worker, args=(str(i), journal)) for i in range(N)],
            strategy=strategy,  # type: ignore[arg-type]
            intensity=10_000,
        )
        sup = await node.start_supervisor(spec)
        seen = {c.ref for c in await sup.which_children()}
        for victim in victims:
            ref = (await sup.which_children())[victim].ref
            assert ref is not None
            ref.kill()
            await sup.count_children()  # queued behind the exit: the restart is done when it answers
        infos = await sup.which_children()
        assert [i.restarts for i in infos] == expected_restarts(strategy, victims)
        assert journal.tags("init") == expected_inits(strategy, victims)
        assert all(i.ref is not None and i.ref.alive for i in infos)
        assert (await sup.count_children()).active == N
        current = [i.ref for i in infos]
        assert len(set(current)) == N
        seen.update(current)
        await sup.stop(Shutdown())
        assert all(ref is not None and not ref.alive for ref in seen)


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    victims=st.lists(st.integers(min_value=0, max_value=N - 1), max_size=12),
)
def test_restart_counts_and_start_order_follow_the_strategy_for_any_sequence_of_kills(
    strategy: str, victims: list[int]
) -> None:
    asyncio.run(run(strategy, victims))


def escalation_index(intensity: int, period: float, times: list[float]) -> int | None:
    """OTP's rule: keep restarts at or after now - period; escalate when more than intensity remain."""
    window: list[float] = []
    for index, now in enumerate(times):
        window = [t for t in window if t >= now - period] + [now]
        if len(window) > intensity:
            return index
    return None


async def run_window(intensity: int, period: float, gaps: list[float]) -> None:
    from beamish.testing import FakeClock

    clock = FakeClock()
    async with Node(clock=clock) as node:
        sup = await node.start_supervisor(
            SupervisorSpec([ChildSpec("w", Worker)], intensity=intensity, period=period)
        )
        times: list[float] = []
        escalated_at = None
        for index, gap in enumerate(gaps):
            await clock.jump(gap)
            times.append(clock.monotonic())
            ref = (await sup.which_children())[0].ref
            assert ref is not None
            ref.kill()
            try:
                await sup.count_children()
            except Exception:
                escalated_at = index
                break
            if not sup.alive:
                escalated_at = index
                break
        assert escalated_at == escalation_index(intensity, period, times)
        if escalated_at is not None:
            assert await sup.wait() == Shutdown("reached_max_restart_intensity")


@pytest.mark.timeout(60)
@settings(max_examples=60, deadline=None)
@given(
    intensity=st.integers(min_value=0, max_value=3),
    period=st.sampled_from([1.0, 2.5, 5.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.0]), min_size=1, max_size=10),
)
def test_escalation_happens_exactly_when_the_sliding_window_overflows(
    intensity: int, period: float, gaps: list[float]
) -> None:
    asyncio.run(run_window(intensity, period, gaps))
