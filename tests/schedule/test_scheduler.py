"""The store-backed scheduler on a fake clock: on-time fires, downtime per misfire policy, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sched_agents import RecordingAgents, create_tables, submits_per_run

from beamish._events import Event
from beamish.errors import ScheduleError
from beamish.journal import Store, open_store
from beamish.schedule import Schedule, Scheduler, run_id_for
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)

DAY0 = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


async def open_with(url: str, clock: FakeClock) -> Store:
    store = await open_store(url, clock=clock)
    await create_tables(store)
    return store


def at(clock: FakeClock, when: datetime) -> None:
    clock.set_wall(when.timestamp())


@pytest.fixture
def clock() -> FakeClock:
    c = FakeClock()
    at(c, DAY0)
    return c


async def test_a_due_tick_becomes_one_run_with_the_deterministic_run_id(
    store_url: str, clock: FakeClock
) -> None:
    store = await open_with(store_url, clock)
    try:
        agents = RecordingAgents(store)
        events: list[Event] = []
        sched = Scheduler(store, agents, clock=clock, events=events.append)
        await sched.add("daily-post", Schedule("0 14 * * *"), "marketing", "Post today's update")
        assert (await sched.run_pass()).fired == []
        at(clock, DAY0 + timedelta(hours=1, seconds=2))
        report = await sched.run_pass()
        expected = run_id_for("daily-post", DAY0 + timedelta(hours=1))
        assert expected == "schedule:daily-post:2026-06-01T14:00:00Z"
        assert report.fired == [expected]
        assert agents.executed == [expected]
        assert (await store.get_run(expected)).status == "succeeded"
        assert [e.kind for e in events] == ["schedule.fired"]
        stored = await store.events(kinds=["schedule.fired"])
        assert [ev.data["run_id"] for _, ev in stored] == [expected]
        assert (await sched.run_pass()).fired == []  # the same tick never fires again
        assert await submits_per_run(store) == {expected: 1}
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("policy", "fired_days", "missed"),
    [("once", [3], 3), ("skip", [], 4), ("all", [0, 1, 2, 3], 0)],
)
async def test_three_days_down_gives_the_runs_the_misfire_policy_promises(
    tmp_path: Path, clock: FakeClock, policy: str, fired_days: list[int], missed: int
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        agents = RecordingAgents(store)
        sched = Scheduler(store, agents, clock=clock)
        await sched.add("post", Schedule("0 14 * * *", misfire=policy, grace_s=60), "marketing", "post")  # type: ignore[arg-type]
        # The node goes down at 13:00 on day 0 and comes back on day 3 at 14:30.
        at(clock, DAY0 + timedelta(days=3, hours=1, minutes=30))
        report = await sched.run_pass()
        expected = [run_id_for("post", DAY0 + timedelta(days=d, hours=1)) for d in fired_days]
        assert report.fired == expected
        assert report.missed == missed
        assert sorted(agents.executed) == expected
        history = await sched.history("post")
        assert len(history) == 4
        assert [h.outcome for h in history].count("missed") == missed
        rate = await sched.success_rate("post")
        assert (rate.succeeded, rate.missed) == (len(fired_days), missed)
        # Back to normal afterwards: day 4 fires on time whatever the policy.
        at(clock, DAY0 + timedelta(days=4, hours=1, seconds=1))
        assert (await sched.run_pass()).fired == [run_id_for("post", DAY0 + timedelta(days=4, hours=1))]
    finally:
        await store.close()


async def test_a_short_outage_within_grace_fires_every_tick_late_but_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        agents = RecordingAgents(store)
        sched = Scheduler(store, agents, clock=clock)
        await sched.add("sweep", Schedule("*/10 * * * *", misfire="skip", grace_s=3600), "coo", "sweep")
        at(clock, DAY0 + timedelta(minutes=35))
        report = await sched.run_pass()
        assert len(report.fired) == 3 and report.missed == 0
        late = [h.late_s for h in await sched.history("sweep")]
        assert sorted(late) == [5 * 60, 15 * 60, 25 * 60]  # type: ignore[type-var]
    finally:
        await store.close()


async def test_history_records_failed_runs_and_the_success_rate_counts_them(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        sched = Scheduler(store, RecordingAgents(store, fail={"flaky"}), clock=clock)
        await sched.add("ok", Schedule("0 * * * *"), "steady", "x")
        await sched.add("bad", Schedule("0 * * * *"), "flaky", "x")
        for hour in range(1, 5):
            at(clock, DAY0 + timedelta(hours=hour, seconds=1))
            await sched.run_pass()
        assert (await sched.success_rate("ok")).rate == 1.0
        bad = await sched.success_rate("bad")
        assert (bad.failed, bad.rate) == (4, 0.0)
        assert {h.outcome for h in await sched.history("bad")} == {"failed"}
    finally:
        await store.close()


async def test_a_failed_hand_over_is_retried_after_the_dispatch_lease_with_the_same_run_id(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        agents = RecordingAgents(store)
        outage = {"on": True}

        async def flaky_submit(agent: str, input: object, *, run_id: str) -> object:
            if outage["on"]:
                raise ConnectionError("agent node unreachable")
            return await agents(agent, input, run_id=run_id)

        sched = Scheduler(store, flaky_submit, clock=clock, dispatch_lease_s=30)
        await sched.add("post", Schedule("0 14 * * *"), "marketing", "post")
        at(clock, DAY0 + timedelta(hours=1, seconds=1))
        assert len((await sched.run_pass()).failed) == 1
        outage["on"] = False
        assert (await sched.run_pass()).redispatched == []  # lease not yet over
        at(clock, DAY0 + timedelta(hours=1, seconds=40))
        report = await sched.run_pass()
        assert report.redispatched == [run_id_for("post", DAY0 + timedelta(hours=1))]
        assert agents.executed == report.redispatched
    finally:
        await store.close()


async def test_the_run_loop_sleeps_on_the_clock_until_the_next_tick(tmp_path: Path, clock: FakeClock) -> None:
    import asyncio

    from beamish.testing import wait_for

    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        agents = RecordingAgents(store)
        sched = Scheduler(store, agents, clock=clock, poll_s=3600)
        await sched.add("post", Schedule("0 14 * * *"), "marketing", "post")
        task = asyncio.create_task(sched.run_forever())
        try:
            await wait_for(lambda: clock.sleepers > 0, what="the loop to sleep")
            assert clock.next_deadline() == pytest.approx(clock.monotonic() + 3600)
            clock.advance(3600)
            await wait_for(lambda: len(agents.executed) == 1, what="the 14:00 run")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await store.close()


async def test_updating_a_schedule_keeps_its_cursor_so_no_past_tick_replays(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        sched = Scheduler(store, RecordingAgents(store), clock=clock)
        await sched.add("s", Schedule("0 14 * * *"), "a", "x")
        at(clock, DAY0 + timedelta(hours=1, seconds=1))
        await sched.run_pass()
        await sched.add("s", Schedule("30 13 * * *"), "a", "x")  # 13:30 today is already past
        assert (await sched.run_pass()).fired == []
        assert await sched.remove("s")
        at(clock, DAY0 + timedelta(days=2))
        assert (await sched.run_pass()).fired == []
    finally:
        await store.close()


@pytest.mark.parametrize(("sid", "agent"), [("", "a"), ("has:colon", "a"), ("ok", "")])
async def test_bad_schedule_ids_and_agents_are_refused(
    tmp_path: Path, clock: FakeClock, sid: str, agent: str
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        with pytest.raises(ScheduleError):
            await Scheduler(store, RecordingAgents(store), clock=clock).add(
                sid, Schedule("@daily"), agent, "x"
            )
    finally:
        await store.close()


async def test_the_scheduler_fires_exactly_the_ticks_of_fires_between_across_a_dst_change(
    tmp_path: Path,
) -> None:
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # midnight in New York, the autumn change
    clock = FakeClock()
    at(clock, start)
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        sched = Scheduler(store, RecordingAgents(store), clock=clock)
        schedules = {
            "ny-0130": Schedule("30 1 * * *", "America/New_York"),
            "ny-15": Schedule("*/15 * * * *", "America/New_York"),
            "lisbon-hourly": Schedule("0 * * * *", "Europe/Lisbon"),
            "ny-0230-jitter": Schedule("30 2 * * *", "America/New_York", jitter_s=90),
        }
        for sid, s in schedules.items():
            await sched.add(sid, s, "worker", sid)
        fired: list[str] = []
        for minute in range(1, 5 * 60):
            at(clock, start + timedelta(minutes=minute, seconds=1))
            fired += (await sched.run_pass()).fired
        end = start + timedelta(minutes=5 * 60 - 1, seconds=1)
        expected = {
            run_id_for(sid, n)
            for sid, s in schedules.items()
            for n in s.fires_between(start, end)
            if s.due_time(sid, n) <= end
        }
        assert sorted(fired) == sorted(expected)
        assert len(fired) == len(set(fired))
        assert sum(1 for rid in fired if rid.startswith("schedule:ny-0130:")) == 1
    finally:
        await store.close()


async def test_changing_the_cron_expression_discards_the_precomputed_ticks(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        sched = Scheduler(store, RecordingAgents(store), clock=clock)
        await sched.add("s", Schedule("0 * * * *"), "a", "x")
        at(clock, DAY0 + timedelta(hours=1, seconds=1))
        assert len((await sched.run_pass()).fired) == 1  # also precomputes 15:00 and 16:00
        await sched.add("s", Schedule("30 * * * *"), "a", "x")
        at(clock, DAY0 + timedelta(hours=1, minutes=30, seconds=1))
        assert (await sched.run_pass()).fired == [run_id_for("s", DAY0 + timedelta(hours=1, minutes=30))]
        at(clock, DAY0 + timedelta(hours=2, seconds=1))
        assert (await sched.run_pass()).fired == []
    finally:
        await store.close()


async def test_a_hand_over_that_keeps_failing_is_parked_for_attention_not_retried_forever(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        attempts: list[str] = []

        async def unreachable(agent: str, input: object, *, run_id: str) -> object:
            attempts.append(run_id)
            raise ConnectionError("agent node unreachable")

        events: list[Event] = []
        sched = Scheduler(
            store,
            unreachable,
            clock=clock,
            dispatch_lease_s=30,
            max_dispatch_attempts=3,
            events=events.append,
        )
        await sched.add("post", Schedule("0 14 * * *"), "marketing", "post")
        rid = run_id_for("post", DAY0 + timedelta(hours=1))
        parked: list[str] = []
        for minute in range(1, 10):
            at(clock, DAY0 + timedelta(hours=1, minutes=minute))
            parked += (await sched.run_pass()).abandoned
        assert attempts == [rid] * 3
        assert parked == [rid]
        assert (await store.get_run(rid)).status == "needs_attention"
        assert [e.kind for e in events] == ["schedule.fired", "run.needs_attention"]
        assert (await sched.history("post"))[0].outcome == "needs_attention"
        assert (await sched.success_rate("post")).rate == 0.0
    finally:
        await store.close()


async def test_sync_stops_a_schedule_deleted_from_the_config_and_keeps_its_history(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    try:
        sched = Scheduler(store, RecordingAgents(store), clock=clock)
        both = [("a", Schedule("0 * * * *"), "x", "a"), ("b", Schedule("0 * * * *"), "y", "b")]
        assert await sched.sync(both) == []
        at(clock, DAY0 + timedelta(hours=1, seconds=1))
        assert len((await sched.run_pass()).fired) == 2
        assert await sched.sync(both[:1]) == ["b"]  # "b" was deleted from the config
        at(clock, DAY0 + timedelta(hours=2, seconds=1))
        assert (await sched.run_pass()).fired == [run_id_for("a", DAY0 + timedelta(hours=2))]
        assert len(await sched.history("b")) == 1
    finally:
        await store.close()


async def test_the_run_loop_gives_up_after_repeated_store_failures_so_its_supervisor_decides(
    tmp_path: Path, clock: FakeClock
) -> None:
    import asyncio

    from beamish import StoreError
    from beamish.testing import wait_for

    store = await open_with(f"sqlite:///{tmp_path}/j.db", clock)
    sched = Scheduler(store, RecordingAgents(store), clock=clock, poll_s=5)
    await store.close()  # every pass now fails
    task = asyncio.create_task(sched.run_forever(max_consecutive_failures=3))
    for _ in range(2):
        await wait_for(lambda: clock.sleepers > 0, what="the loop to wait before retrying")
        assert not task.done()
        clock.advance(5)
    with pytest.raises(StoreError):
        await asyncio.wait_for(task, 5)
