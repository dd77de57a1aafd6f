"""The scheduler as a supervised child of a node: fires on the node's clock, survives restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sched_agents import RecordingAgents, create_tables, submits_per_run

from beamish.journal import open_store
from beamish.runtime import ChildSpec, Node, SupervisorSpec
from beamish.schedule import Schedule, SchedulerActor, run_id_for
from beamish.testing import FakeClock, wait_for

pytestmark = pytest.mark.timeout(30)
T0 = datetime(2026, 6, 1, 13, 59, tzinfo=UTC)


async def test_a_supervised_scheduler_fires_and_a_restart_repeats_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.set_wall(T0.timestamp())
    store = await open_store(f"sqlite:///{tmp_path}/j.db", clock=clock)
    await create_tables(store)
    agents = RecordingAgents(store)
    entry = ("post", Schedule("* * * * *"), "marketing", "post an update")
    spec = ChildSpec(
        id="scheduler",
        start=SchedulerActor,
        kwargs={"store": store, "submit": agents, "schedules": [entry], "poll_s": 60.0},
    )
    try:
        async with Node(clock=clock) as node:
            events = node.events()
            sup = await node.start_supervisor(SupervisorSpec([spec]))
            await wait_for(lambda: clock.sleepers > 0, what="the scheduler to sleep")
            clock.advance(61)
            fired = await asyncio.wait_for(events.next("schedule.fired"), 5)
            assert fired.data["run_id"] == run_id_for("post", T0 + timedelta(minutes=1))
            await wait_for(lambda: len(agents.executed) == 1, what="the first run")

            await sup.terminate_child("scheduler")
            await sup.restart_child("scheduler")
            (child,) = await sup.which_children()
            assert child.ref is not None
            assert (await child.ref.call(("pass",))).fired == []  # the restarted one repeats nothing
            clock.advance(60)
            await wait_for(lambda: len(agents.executed) == 2, what="the next minute's run")
            rate = await child.ref.call(("success_rate", "post"))
            assert (rate.succeeded, rate.due) == (2, 2)
            await events.aclose()
        # The hand-over may repeat (a stop can land between submit and its bookkeeping); the run
        # never does: each tick's run_id was executed exactly once.
        assert len(agents.executed) == len(set(agents.executed)) == 2
        assert set(await submits_per_run(store)) == set(agents.executed)
    finally:
        await store.close()


async def test_a_scheduler_whose_store_keeps_failing_crashes_for_its_supervisor(tmp_path: Path) -> None:
    from beamish import Crashed

    clock = FakeClock()
    clock.set_wall(T0.timestamp())
    store = await open_store(f"sqlite:///{tmp_path}/j.db", clock=clock)
    await store.close()  # every pass fails from now on
    async with Node(clock=clock) as node:
        ref = await node.spawn(
            SchedulerActor, store=store, submit=RecordingAgents(store), poll_s=1.0, max_consecutive_failures=3
        )
        for _ in range(2):
            await wait_for(lambda: clock.sleepers > 0, what="the loop to wait before retrying")
            clock.advance(1.0)
        reason = await asyncio.wait_for(ref.wait(), 5)
        assert isinstance(reason, Crashed)
        assert "scheduler loop ended" in str(reason.error)
