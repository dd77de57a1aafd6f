"""The Store on every backend: runs, steps, events, ledger, leases, prune, the portable SQL layer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from beamish import Crashed, OverBudget, SpecError, StoreError
from beamish._events import Event
from beamish.errors import Fenced, RunNotFound
from beamish.journal import Store, open_store
from beamish.testing import FakeClock, wait_for

pytestmark = pytest.mark.timeout(30)


async def test_creating_a_run_twice_returns_the_existing_run(store: Store) -> None:
    run, created = await store.create_run("ceo", {"task": "plan"}, run_id="r-1")
    again, created_again = await store.create_run("ceo", {"task": "other"}, run_id="r-1")
    assert created and not created_again
    assert again.run_id == run.run_id == "r-1"
    assert again.input == {"task": "plan"}
    assert again.status == "queued"


async def test_runs_are_listed_by_agent_and_status(store: Store, clock: FakeClock) -> None:
    await store.create_run("ceo", "a", run_id="a")
    clock.advance(1)
    await store.create_run("cfo", "b", run_id="b")
    clock.advance(1)
    await store.create_run("ceo", "c", run_id="c", status="running")
    assert [r.run_id for r in await store.list_runs(agent="ceo")] == ["c", "a"]
    assert [r.run_id for r in await store.list_runs(status="running")] == ["c"]
    assert [r.run_id for r in await store.list_runs(status=["queued"], agent="cfo")] == ["b"]


async def test_run_status_output_and_exit_reason_round_trip(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    updated = await store.update_run(
        "r", status="failed", output={"text": "no"}, reason=Crashed("ValueError: boom"), meta={"k": 1}
    )
    assert updated.status == "failed"
    assert updated.output == {"text": "no"}
    assert updated.reason == Crashed("ValueError: boom")
    assert updated.meta == {"k": 1}
    paused = await store.update_run("r", status="paused", reason=OverBudget("per_day_usd", 3.1, 3.0))
    assert paused.reason == OverBudget("per_day_usd", 3.1, 3.0)
    assert paused.output == {"text": "no"}


async def test_bad_status_and_unknown_run_are_named(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    with pytest.raises(SpecError, match="'done'"):
        await store.update_run("r", status="done")
    with pytest.raises(RunNotFound, match="nope"):
        await store.get_run("nope")
    with pytest.raises(SpecError, match="JSON-safe"):
        await store.create_run("ceo", {"x": object()})


async def test_steps_record_kind_phase_payload_and_spend_from_done_rows(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    epoch = await store.claim_run("r", "node-a")
    await store.record_step(
        "r",
        0,
        epoch,
        kind="llm",
        phase="done",
        request={"q": 1},
        response={"text": "hi"},
        tokens_in=10,
        tokens_out=5,
        cost_usd=0.25,
    )
    await store.record_step(
        "r", 1, epoch, kind="tool", phase="intent", request={"name": "post"}, effect="once"
    )
    steps = await store.steps("r")
    assert [(s.seq, s.kind, s.phase) for s in steps] == [(0, "llm", "done"), (1, "tool", "intent")]
    assert steps[0].response == {"text": "hi"} and steps[0].tokens_in == 10
    assert steps[1].idempotency_key == "r:1"
    assert (await store.get_run("r")).spend_usd == pytest.approx(0.25)
    await store.record_step(
        "r",
        1,
        epoch,
        kind="tool",
        phase="done",
        request={"name": "post"},
        effect="once",
        response="posted",
        cost_usd=0.5,
    )
    assert (await store.get_run("r")).spend_usd == pytest.approx(0.75)
    assert await store.spend("ceo") == pytest.approx(0.75)


async def test_a_finished_step_cannot_be_overwritten(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    epoch = await store.claim_run("r", "n")
    await store.record_step("r", 0, epoch, kind="llm", phase="done", request={"q": 1}, response="a")
    with pytest.raises(StoreError, match="already recorded"):
        await store.record_step("r", 0, epoch, kind="llm", phase="done", request={"q": 1}, response="b")
    assert (await store.steps("r"))[0].response == "a"


async def test_large_payloads_are_stored_once_by_content_hash(store: Store) -> None:
    big = {"prompt": "x" * 5000}
    for rid in ("r1", "r2"):
        await store.create_run("ceo", None, run_id=rid)
        epoch = await store.claim_run(rid, "n")
        await store.record_step(rid, 0, epoch, kind="llm", phase="done", request=big, response=big)
    row = await store.fetchone("SELECT COUNT(*) AS n FROM payloads")
    assert row is not None and row["n"] == 1
    assert (await store.steps("r2"))[0].response == big


async def test_message_history_is_rebuilt_from_snapshot_and_deltas(store: Store) -> None:
    await store.create_run("ceo", None, run_id="r")
    epoch = await store.claim_run("r", "n")
    history: list[object] = []
    for seq in range(7):
        delta = [{"role": "assistant", "content": f"m{seq}"}]
        history += delta
        await store.record_step(
            "r",
            seq,
            epoch,
            kind="llm",
            phase="done",
            request={"seq": seq},
            messages=delta,
            snapshot=list(history) if seq == 3 else None,
        )
    messages, last = await store.messages("r")
    assert messages == history and last == 6
    deltas_read = await store.fetchall("SELECT seq FROM snapshots WHERE run_id = ?", ["r"])
    assert [r["seq"] for r in deltas_read] == [3]


async def test_events_are_appended_read_since_an_id_and_followed(store: Store) -> None:
    first = await store.append_event(Event("run.started", "r1", {"n": 1}, at=1.0))
    second = await store.append_event(Event("run.finished", "r1", {"n": 2}, at=2.0))
    assert second > first
    assert [e.kind for _, e in await store.events()] == ["run.started", "run.finished"]
    assert [e.data for _, e in await store.events(since=first)] == [{"n": 2}]
    assert [i for i, _ in await store.events(subject="r1", kinds=["run.finished"])] == [second]
    follower = store.follow(since=second, poll_s=0.01)
    waiter = asyncio.ensure_future(follower.__anext__())
    third = await store.append_event(Event("run.paused", "r1"))
    got = await asyncio.wait_for(_drive(waiter, store), 5)
    assert got[0] == third and got[1].kind == "run.paused"
    await follower.aclose()


async def _drive(waiter: asyncio.Future[tuple[int, Event]], store: Store) -> tuple[int, Event]:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    while not waiter.done():
        await clock.jump(0.01)
        await asyncio.sleep(0.001)
    return waiter.result()


async def test_ledger_spend_is_summed_per_agent_and_window(store: Store, clock: FakeClock) -> None:
    t0 = clock.time()
    await store.add_ledger("cfo", 1.0, at=t0)
    await store.add_ledger("cfo", 2.0, at=t0 + 100)
    await store.add_ledger("ceo", 4.0, at=t0 + 100, run_id="r9")
    await store.add_ledger("cfo", 8.0, kind="reserve", at=t0 + 100)
    assert await store.spend("cfo") == 3.0
    assert await store.spend("cfo", since=t0 + 50) == 2.0
    assert await store.spend("cfo", until=t0 + 50) == 1.0
    assert await store.spend(run_id="r9") == 4.0
    assert await store.spend() == 7.0
    assert [e.amount_usd for e in await store.ledger("cfo", kind="reserve")] == [8.0]


async def test_leases_have_growing_epochs_and_expire(store: Store, clock: FakeClock) -> None:
    a = await store.acquire_lease("agent:ceo", "node-a", ttl_s=10)
    assert a is not None and a.epoch == 1
    assert await store.acquire_lease("agent:ceo", "node-b", ttl_s=10) is None
    again = await store.acquire_lease("agent:ceo", "node-a", ttl_s=10)
    assert again is not None and again.epoch == 1
    a = await store.renew_lease(a, ttl_s=10)
    clock.advance(11)
    b = await store.acquire_lease("agent:ceo", "node-b", ttl_s=10)
    assert b is not None and b.epoch == 2
    with pytest.raises(Fenced, match="no longer held"):
        await store.renew_lease(a, ttl_s=10)
    assert (await store.get_lease("agent:ceo")) == b
    assert await store.release_lease(b)
    assert await store.get_lease("agent:ceo") is None
    c = await store.acquire_lease("agent:ceo", "node-a", ttl_s=10)
    assert c is not None and c.epoch == 3


async def test_expired_leases_are_claimed_by_another_node(store: Store, clock: FakeClock) -> None:
    for name in ("agent:a", "agent:b", "other:c"):
        assert await store.acquire_lease(name, "node-a", ttl_s=5)
    assert await store.claim_expired_leases("node-b", 5, prefix="agent:") == []
    clock.advance(6)
    taken = await store.claim_expired_leases("node-b", 5, prefix="agent:")
    assert [(t.name, t.owner, t.epoch) for t in taken] == [("agent:a", "node-b", 2), ("agent:b", "node-b", 2)]


async def test_prune_drops_old_finished_runs_and_keeps_failed_and_live_ones(
    store: Store, clock: FakeClock
) -> None:
    for rid, status in (
        ("ok", "succeeded"),
        ("bad", "failed"),
        ("live", "running"),
        ("stuck", "needs_attention"),
    ):
        await store.create_run("ceo", None, run_id=rid, status=status)
        epoch = await store.claim_run(rid, "n")
        await store.record_step(rid, 0, epoch, kind="llm", phase="done", request={"x": "y" * 3000})
    await store.append_event(Event("run.started", "ok", at=clock.time()))
    clock.advance(86400 * 8)
    await store.create_run("ceo", None, run_id="new", status="succeeded")
    report = await store.prune(timedelta(days=7))
    assert report.runs == 1 and report.steps == 1 and report.events == 1
    assert {r.run_id for r in await store.list_runs()} == {"bad", "live", "stuck", "new"}
    report = await store.prune(older_than=86400 * 7, keep_failed=False)
    assert report.runs == 1
    assert {r.run_id for r in await store.list_runs()} == {"live", "stuck", "new"}
    row = await store.fetchone("SELECT COUNT(*) AS n FROM payloads")
    assert row is not None and row["n"] == 1  # still used by 'live' and 'stuck'


async def test_portable_transaction_commits_and_rolls_back(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO leases (name, owner, epoch, expires_at) VALUES (?, ?, ?, ?)", ("x", "o", 1, 5.0)
        )
        row = await tx.fetchone("SELECT owner FROM leases WHERE name = ?", ["x"])
        assert row == {"owner": "o"}
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.execute("UPDATE leases SET owner = ? WHERE name = ?", ("changed", "x"))
            raise RuntimeError("abort")
    assert await store.fetchall("SELECT owner FROM leases") == [{"owner": "o"}]
    with pytest.raises(StoreError):
        await store.execute("SELECT * FROM no_such_table")
    assert store.dialect in ("sqlite", "postgresql")


async def test_notify_wakes_a_listener(store: Store) -> None:
    listener = store.listen("mailbox_ceo")
    got = asyncio.ensure_future(listener.__anext__())
    for _ in range(200):
        if got.done():
            break
        await store.notify("mailbox_ceo", "hello")
        try:
            await asyncio.wait_for(asyncio.shield(got), 0.05)
        except TimeoutError:
            continue
    assert got.result() == "hello"
    await listener.aclose()
    with pytest.raises(SpecError):
        await store.notify("bad channel!", "x")


async def test_reopening_applies_nothing_and_keeps_data(store_url: str, clock: FakeClock) -> None:
    first = await open_store(store_url, clock=clock)
    assert first.applied and first.applied[0] == "journal/0001_initial"
    await first.create_run("ceo", None, run_id="kept")
    await first.close()
    second = await open_store(store_url, clock=clock)
    try:
        assert second.applied == []
        assert (await second.get_run("kept")).agent == "ceo"
    finally:
        await second.close()


async def test_bad_urls_are_refused_with_a_clear_message() -> None:
    with pytest.raises(SpecError, match="unknown store URL"):
        await open_store("mysql://x")
    with pytest.raises(StoreError, match="file path"):
        await open_store("sqlite:///")
    with pytest.raises(StoreError, match="does not exist"):
        await open_store("sqlite:////no/such/dir/j.db")


async def test_a_write_inside_an_open_transaction_is_refused_instead_of_deadlocking(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO leases (name, owner, epoch, expires_at) VALUES ('a', 'o', 1, 0)")
        with pytest.raises(StoreError, match="inside an open store"):
            await store.create_run("ceo", None, run_id="r")
        with pytest.raises(StoreError, match="inside an open store"):
            async with store.transaction():
                pass
    assert await store.fetchall("SELECT name FROM leases") == [{"name": "a"}]


async def test_concurrent_appends_from_many_tasks_are_all_kept(store: Store) -> None:
    for r in range(4):
        await store.create_run("ceo", None, run_id=f"r{r}")
    epochs = {f"r{r}": await store.claim_run(f"r{r}", "n") for r in range(4)}

    async def writer(rid: str) -> None:
        for seq in range(15):
            await store.record_step(
                rid, seq, epochs[rid], kind="llm", phase="done", request={"s": seq}, cost_usd=0.01
            )

    async def transactor() -> None:
        for i in range(5):
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO leases (name, epoch) VALUES (?, ?)", (f"l{i}", i))

    await asyncio.gather(*(writer(rid) for rid in epochs), transactor())
    for rid in epochs:
        assert [s.seq for s in await store.steps(rid)] == list(range(15))
    assert await store.spend("ceo") == pytest.approx(0.6)
    assert len(await store.fetchall("SELECT name FROM leases")) == 5


async def test_follow_yields_an_event_committed_after_a_higher_id(store: Store) -> None:
    """Concurrent writers on PostgreSQL can make id 3 visible before id 2: neither is lost."""
    await store.append_event(Event("run.started", "a", at=1.0))
    follower = store.follow(since=1, poll_s=0.01)
    body = '{{"v":1,"kind":"{k}","subject":"s","data":{{}},"at":1.0}}'
    await store.execute(
        "INSERT INTO events (id, at, kind, subject, body) VALUES (3, 1, 'run.finished', 's', ?)",
        [body.format(k="run.finished")],
    )
    first = await asyncio.wait_for(_drive(asyncio.ensure_future(follower.__anext__()), store), 5)
    assert first[0] == 3
    await store.execute(
        "INSERT INTO events (id, at, kind, subject, body) VALUES (2, 1, 'run.paused', 's', ?)",
        [body.format(k="run.paused")],
    )
    second = await asyncio.wait_for(_drive(asyncio.ensure_future(follower.__anext__()), store), 5)
    assert second[0] == 2 and second[1].kind == "run.paused"
    await follower.aclose()


async def test_two_nodes_claiming_expired_leases_at_once_split_them(store_url: str, clock: FakeClock) -> None:
    stores = [await open_store(store_url, clock=clock) for _ in range(2)]
    try:
        for i in range(12):
            assert await stores[0].acquire_lease(f"agent:{i:02}", "dead-node", ttl_s=5)
        clock.advance(6)
        a, b = await asyncio.gather(
            stores[0].claim_expired_leases("node-a", 30, prefix="agent:", limit=12),
            stores[1].claim_expired_leases("node-b", 30, prefix="agent:", limit=12),
        )
        names_a, names_b = {x.name for x in a}, {x.name for x in b}
        assert not names_a & names_b
        assert names_a | names_b == {f"agent:{i:02}" for i in range(12)}
        assert all(x.epoch == 2 for x in [*a, *b])
    finally:
        for s in stores:
            await s.close()


async def test_a_transaction_cancelled_while_it_begins_leaves_the_store_usable(store: Store) -> None:
    async def never_used() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO leases (name) VALUES ('never')")

    for _ in range(6):  # more than the PostgreSQL pool holds: a leaked connection would show
        task = asyncio.ensure_future(never_used())
        await asyncio.sleep(0)  # the task is now waiting for its BEGIN
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        run, _ = await asyncio.wait_for(store.create_run("ceo", None), 10)
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO leases (name) VALUES (?)", [run.run_id])
    assert await store.fetchall("SELECT name FROM leases WHERE name = 'never'") == []


async def test_a_postgres_follower_wakes_on_notify_not_on_its_poll(pg_url: str, clock: FakeClock) -> None:
    store = await open_store(pg_url, clock=clock)  # the fake clock never moves: only a NOTIFY wakes it
    try:
        follower = store.follow(poll_s=3600)
        got = asyncio.ensure_future(follower.__anext__())
        await wait_for(lambda: clock.sleepers >= 1, what="the follower to wait")  # found nothing, waits
        for _ in range(100):  # the listener connects in the background; keep storing until it hears
            await store.append_event(Event("run.started", "r"))
            done, _ = await asyncio.wait({got}, timeout=0.2)
            if done:
                break
        eid, event = got.result()
        assert event.kind == "run.started" and eid >= 1
        await follower.aclose()
    finally:
        await store.close()
