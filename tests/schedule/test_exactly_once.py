"""Exactly once across processes: two schedulers racing on one store, and one SIGKILLed mid-tick."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sched_agents import RecordingAgents, create_tables, executions_per_run, submits_per_run

from beamish.journal import Store, open_store
from beamish.schedule import Schedule, Scheduler, run_id_for
from beamish.testing import FakeClock

WORKER = str(Path(__file__).with_name("_sched_worker.py"))
T0 = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 in New York on the autumn change
STEPS = 150  # minutes of scheduler time each process walks through
SCHEDULES = {
    "every-minute": Schedule("* * * * *"),
    "every-5": Schedule("*/5 * * * *", "America/New_York"),
    "hourly": Schedule("0 * * * *", "America/New_York"),
    "daily-0130": Schedule("30 1 * * *", "America/New_York"),
}


async def prepare(url: str) -> None:
    clock = FakeClock()
    clock.set_wall(T0.timestamp())
    store = await open_store(url, clock=clock)
    try:
        await create_tables(store)
        sched = Scheduler(store, RecordingAgents(store), clock=clock)
        for sid, schedule in SCHEDULES.items():
            await sched.add(sid, schedule, "worker", sid)
    finally:
        await store.close()


async def spawn(url: str, owner: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        url,
        owner,
        str(T0.timestamp()),
        str(STEPS),
        *extra,
        cwd=str(Path(WORKER).parent),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def start(*procs: asyncio.subprocess.Process) -> None:
    """Wait until every worker is ready, then release them together."""
    for p in procs:
        assert p.stdout is not None
        assert (await asyncio.wait_for(p.stdout.readline(), 30)).strip() == b"ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()


async def wait_for_submits(store: Store, n: int, timeout: float = 30.0) -> None:
    """Wait (bounded) until the workers have handed over ``n`` runs, reading the store."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sum((await submits_per_run(store)).values()) < n:
        assert loop.time() < deadline, f"fewer than {n} hand-overs after {timeout}s"
        await asyncio.sleep(0.01)


def expected_run_ids() -> set[str]:
    end = T0 + timedelta(minutes=STEPS, seconds=1)
    return {run_id_for(sid, n) for sid, s in SCHEDULES.items() for n in s.fires_between(T0, end)}


async def check_each_tick_ran_once(url: str) -> dict[str, int]:
    store = await open_store(url)
    try:
        per_run = await submits_per_run(store)
        fires = await store.fetchall("SELECT run_id, claimed_by FROM schedule_fires WHERE action = 'fire'")
        runs = await store.fetchall("SELECT run_id, status FROM runs")
    finally:
        await store.close()
    expected = expected_run_ids()
    assert set(per_run) == expected
    assert [rid for rid, n in per_run.items() if n != 1] == []
    assert sorted(str(f["run_id"]) for f in fires) == sorted(expected)
    assert {str(r["run_id"]) for r in runs} == expected
    assert {r["status"] for r in runs} == {"succeeded"}
    owners: dict[str, int] = {}
    for f in fires:
        owners[str(f["claimed_by"])] = owners.get(str(f["claimed_by"]), 0) + 1
    return owners


async def race_two_schedulers(url: str) -> None:
    await prepare(url)
    # Each worker walks its own fake clock, and under load one may run hours of scheduler time ahead:
    # a dispatch lease shorter than the whole walk would let it re-dispatch a tick the slower one is
    # still handing over (the same run_id, harmless, but this test counts hand-overs).
    lease = str(60 * (STEPS + 60))
    procs = [await spawn(url, "node-a", "0", lease), await spawn(url, "node-b", "0", lease)]
    await start(*procs)
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 60)
    assert codes == [0, 0]
    owners = await check_each_tick_ran_once(url)
    assert len(expected_run_ids()) > 150
    assert sum(owners.values()) == len(expected_run_ids())


@pytest.mark.timeout(90)
async def test_two_scheduler_processes_on_one_sqlite_store_run_each_tick_once(tmp_path: Path) -> None:
    await race_two_schedulers(f"sqlite:///{tmp_path}/journal.db")


@pytest.mark.timeout(90)
async def test_two_scheduler_processes_on_postgresql_run_each_tick_once(pg_url: str) -> None:
    await race_two_schedulers(pg_url)


@pytest.mark.timeout(60)
async def test_a_scheduler_killed_between_claiming_and_running_a_tick_still_runs_it_once(
    store_url: str,
) -> None:
    await prepare(store_url)
    victim = await spawn(store_url, "victim", "1")
    await start(victim)
    assert await asyncio.wait_for(victim.wait(), 30) == -signal.SIGKILL
    clock = FakeClock()
    clock.set_wall((T0 + timedelta(minutes=1, seconds=1)).timestamp())
    store = await open_store(store_url, clock=clock)
    try:
        claimed = await store.fetchall(
            "SELECT run_id, claimed_by FROM schedule_fires WHERE status = 'claimed'"
        )
        assert [r["claimed_by"] for r in claimed] == ["victim"]
        orphan = str(claimed[0]["run_id"])
        assert await submits_per_run(store) == {}
        agents = RecordingAgents(store)
        survivor = Scheduler(store, agents, clock=clock, owner="survivor", dispatch_lease_s=30)
        assert (await survivor.run_pass()).redispatched == []  # the victim's lease is still running
        clock.set_wall(clock.time() + 31)
        report = await survivor.run_pass()
        assert report.redispatched == [orphan]
        assert agents.executed == [orphan]
        assert (await store.get_run(orphan)).status == "succeeded"
        await survivor.run_pass()
        assert await submits_per_run(store) == {orphan: 1}
    finally:
        await store.close()


@pytest.mark.timeout(90)
async def test_a_scheduler_killed_mid_race_leaves_every_tick_run_exactly_once(store_url: str) -> None:
    """A races B and is SIGKILLed in its 10th hand-over; B re-dispatches A's orphaned claims (an hour
    of scheduler time later) and each tick's run is executed once, even where a hand-over repeats."""
    await prepare(store_url)
    procs = [await spawn(store_url, "node-a", "10"), await spawn(store_url, "node-b")]
    await start(procs[0])  # node-a first, so it surely gets to its 10th hand-over …
    watcher = await open_store(store_url)
    try:
        await wait_for_submits(watcher, 5)
    finally:
        await watcher.close()
    await start(procs[1])  # … racing node-b by then
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 60)
    store = await open_store(store_url)
    try:
        executed = await executions_per_run(store)
        submitted = await submits_per_run(store)
        runs = await store.fetchall("SELECT status FROM runs")
        left = await store.fetchall("SELECT run_id FROM schedule_fires WHERE status = 'claimed'")
    finally:
        await store.close()
    if codes[0] == 0:
        pytest.fail("node-a never reached its 10th hand-over")
    assert codes == [-signal.SIGKILL, 0]
    assert set(executed) == expected_run_ids()
    assert [rid for rid, n in executed.items() if n != 1] == []
    assert {r["status"] for r in runs} == {"succeeded"}
    assert left == []
    assert set(submitted) == expected_run_ids()
