"""Nodes whose clocks are five minutes off, on the real PostgreSQL: leases, heartbeats and due times
are read on the database's clock, so no node steals a live lease, keeps one that ran out, or fires a
tick early or late. Each node's clock is injected (its store, runtime and scheduler read it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from _harness import eventually

from beamish.cluster import ClusterNode, Unit
from beamish.journal import Store, open_store
from beamish.runtime import Actor, ChildSpec, Node
from beamish.schedule import Schedule, Scheduler

pytestmark = pytest.mark.timeout(60)

SKEW_S = 300.0
LEASE_S = 0.6


class SkewedClock:
    """The machine's clocks with the wall clock ``offset_s`` off, as on a node without NTP."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self.offset_s

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))


class Idle(Actor):
    """A unit's stand-in: it only has to start and stop."""


async def lease_events(store: Store, kind: str) -> list[str]:
    rows = await store.fetchall("SELECT subject FROM events WHERE kind = ? ORDER BY id", (kind,))
    return [str(r["subject"]) for r in rows]


async def lease_rows(store: Store) -> dict[str, tuple[str | None, int, float]]:
    rows = await store.fetchall("SELECT name, owner, epoch, expires_at FROM leases WHERE name LIKE 'unit:%'")
    return {str(r["name"]): (r["owner"], int(r["epoch"]), float(r["expires_at"])) for r in rows}


@pytest.mark.parametrize("first", ["behind", "ahead"])
async def test_nodes_five_minutes_apart_neither_steal_nor_lose_leases_and_fail_over_within_a_lease(
    pg_url: str, first: str
) -> None:
    units = [Unit(f"u{i}", ChildSpec(f"u{i}", Idle), ()) for i in range(4)]
    skews = {"behind": -SKEW_S, "ahead": SKEW_S}
    stores = {name: await open_store(pg_url, clock=SkewedClock(s)) for name, s in skews.items()}
    second = "ahead" if first == "behind" else "behind"
    try:
        async with (
            Node(name=first, clock=SkewedClock(skews[first])) as n1,
            Node(name=second, clock=SkewedClock(skews[second])) as n2,
        ):
            one = ClusterNode(n1, stores[first], units, node_id=first, lease_s=LEASE_S)
            two = ClusterNode(n2, stores[second], units, node_id=second, lease_s=LEASE_S)
            await one.start()
            assert len(one.held) == 4
            await two.start()

            async def even() -> bool:
                return len(one.held) == 2 and len(two.held) == 2

            await eventually(even, 10, "4 units spread 2/2 by hand-over")
            settled = await lease_rows(stores[first])
            latest = max(exp for _, _, exp in settled.values())

            async def renewed_for_three_leases() -> bool:
                rows = await lease_rows(stores[first])
                return all(exp > latest + 3 * LEASE_S for _, _, exp in rows.values())

            await eventually(renewed_for_three_leases, 10, "three leases' worth of renewals")
            after = await lease_rows(stores[first])
            # nobody took a unit the other renews: same holders, same epochs, no lease lost
            assert {n: (o, e) for n, (o, e, _) in after.items()} == {
                n: (o, e) for n, (o, e, _) in settled.items()
            }
            assert await lease_events(stores[first], "lease.lost") == []

            crashed = set(one.held)
            for task in (one._task, one._placing, one._wakes, one._guarding):
                assert task is not None
                task.cancel()  # the node dies without releasing anything
            start = time.monotonic()

            async def taken_over() -> bool:
                return crashed <= set(two.held)

            took = await eventually(taken_over, 5, "the dead node's units held by the survivor")
            assert took < LEASE_S + 1.0, f"failover took {took:.2f}s at a {LEASE_S}s lease"
            assert time.monotonic() - start < LEASE_S + 1.0
            await two.stop()
            one._task = one._placing = one._wakes = one._guarding = None
            one.held.clear()
            await one.stop()
    finally:
        for store in stores.values():
            await store.close()


class Recorder:
    """A scheduler's hand-over target: records each run_id it was given."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    async def __call__(self, agent: str, input: object, *, run_id: str) -> object:
        self.run_ids.append(run_id)
        return run_id


def minute_floor(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(second=0, microsecond=0)


def tick_ids(first_due: float, upto: float) -> list[str]:
    """The run ids of the per-minute ticks due from ``first_due`` up to ``upto`` (true time)."""
    out, due = [], first_due
    while due <= upto:
        out.append("schedule:tick:" + datetime.fromtimestamp(due, UTC).isoformat().replace("+00:00", "Z"))
        due += 60
    return out


async def fires_on_time(sched: Scheduler, first_due: float) -> list[str]:
    """One pass: every tick due before it started fires (not late), none due after it ended (not
    early). The machine's clock is the database's here, so ``time.time()`` is the true time."""
    start = time.time()
    fired = (await sched.run_pass()).fired
    end = time.time()
    assert fired[: len(tick_ids(first_due, start))] == tick_ids(first_due, start)
    assert fired == tick_ids(first_due, end)[: len(fired)]
    return fired


@pytest.mark.parametrize("skew_s", [-SKEW_S, SKEW_S])
async def test_a_scheduler_five_minutes_off_fires_each_tick_on_time_not_early_or_late(
    pg_url: str, skew_s: float
) -> None:
    store = await open_store(pg_url, clock=SkewedClock(skew_s))
    submitted = Recorder()
    sched = Scheduler(store, submitted, clock=SkewedClock(skew_s), owner="skewed")
    try:
        before = time.time()
        await sched.add("tick", Schedule("* * * * *", misfire="all", grace_s=3600), "ops", "beat")
        after = time.time()
        row = await store.fetchone("SELECT cursor_at, next_due_at FROM schedules WHERE schedule_id = 'tick'")
        assert row is not None
        assert before <= float(row["cursor_at"]) <= after  # from now, not five minutes off
        first_due = float(row["next_due_at"])
        assert first_due in {(minute_floor(t) + timedelta(minutes=1)).timestamp() for t in (before, after)}
        fired = await fires_on_time(sched, first_due)  # the next five minutes are not due yet
        if fired:  # the minute turned meanwhile: that tick fired on time, which is the point
            assert submitted.run_ids == fired
            return
        wait = await sched._seconds_to_next_due()
        assert abs(wait - min(sched.poll_s, first_due - time.time())) < 0.5
        # as if added a minute earlier: the tick of the minute that has begun is due now
        await store.execute(
            "UPDATE schedules SET cursor_at = cursor_at - 60, next_due_at = next_due_at - 60, "
            "next_nominal_at = NULL, following_at = NULL WHERE schedule_id = 'tick'"
        )
        fired = await fires_on_time(sched, first_due - 60)
        assert fired  # due, and fired now
        assert (await sched.run_pass()).fired == []
        assert submitted.run_ids == fired  # each once
    finally:
        await store.close()
