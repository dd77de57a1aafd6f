"""Durable mailboxes: idempotent send, leases, redelivery after a consumer crash, wake-ups, consults."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from _bus_handler import DDL, handle

from beamish import SpecError
from beamish.bus import Mailboxes
from beamish.errors import ConsultDeadline
from beamish.journal import Store, open_store
from beamish.testing import FakeClock, wait_for

pytestmark = pytest.mark.timeout(30)
WORKER = str(Path(__file__).with_name("_bus_worker.py"))


async def opened(url: str, clock: FakeClock | None = None) -> Store:
    store = await open_store(url, clock=clock) if clock else await open_store(url)
    for ddl in DDL:
        await store.execute(ddl)
    return store


async def test_sending_twice_with_one_key_stores_one_message(store_url: str) -> None:
    store = await opened(store_url)
    try:
        boxes = Mailboxes(store)
        first = await boxes.put("tasks", {"do": "report"}, key="report-2026-06-01")
        again = await boxes.put("tasks", {"do": "report"}, key="report-2026-06-01")
        assert first == again
        assert (await store.fetchone("SELECT COUNT(*) AS n FROM mailbox"))["n"] == 1  # type: ignore[index]
        msg = await boxes.claim("tasks")
        assert msg is not None and msg.payload == {"do": "report"} and msg.attempts == 1
        assert await boxes.claim("tasks") is None
    finally:
        await store.close()


async def test_a_claimed_message_is_redelivered_only_after_its_lease_and_never_after_ack(
    store_url: str,
) -> None:
    clock = FakeClock(wall_start=time.time())
    store = await opened(store_url, clock)
    try:
        a = Mailboxes(store, clock=clock, owner="a", lease_s=10)
        b = Mailboxes(store, clock=clock, owner="b", lease_s=10)
        await a.put("tasks", "one", key="k1")
        first = await a.claim("tasks")
        assert first is not None
        assert await b.claim("tasks") is None
        clock.advance(11)
        second = await b.claim("tasks")
        assert second is not None and second.id == first.id and second.attempts == 2
        assert not await a.ack(first), "a lost its lease to b: its ack must not count"
        assert await b.ack(second)
        clock.advance(100)
        assert await a.claim("tasks") is None
    finally:
        await store.close()


async def test_release_and_extend_move_the_lease(store_url: str) -> None:
    clock = FakeClock(wall_start=time.time())
    store = await opened(store_url, clock)
    try:
        a = Mailboxes(store, clock=clock, owner="a", lease_s=10)
        await a.put("tasks", "one", key="k1")
        msg = await a.claim("tasks")
        assert msg is not None
        clock.advance(8)
        assert await a.extend(msg, 10)
        clock.advance(8)
        assert await Mailboxes(store, clock=clock, owner="b").claim("tasks") is None
        assert await a.release(msg)
        again = await Mailboxes(store, clock=clock, owner="b").claim("tasks")
        assert again is not None and again.id == msg.id
    finally:
        await store.close()


@pytest.mark.timeout(60)
async def test_a_message_survives_its_consumers_crash_and_is_handled_once(store_url: str) -> None:
    store = await opened(store_url)
    try:
        await Mailboxes(store).put("tasks", "post the weekly report", key="weekly-2026-23")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, WORKER, store_url, "tasks", cwd=str(Path(WORKER).parent)
        )
        assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
        # The crashed consumer holds the lease for 30 s; the store's clock (driven by the test) is
        # past it. On the database's own clock a node whose clock runs ahead could not take it.
        clock = FakeClock(wall_start=time.time() + 31)
        await store.close()
        store = await opened(store_url, clock)
        survivor = Mailboxes(store, clock=clock, owner="survivor")
        msg = await survivor.receive("tasks", timeout=5)
        assert (msg.key, msg.attempts) == ("weekly-2026-23", 2)
        await handle(store, msg)
        assert await survivor.ack(msg)
        handled = await store.fetchall("SELECT attempt FROM test_handled ORDER BY attempt")
        effects = await store.fetchall("SELECT idem_key FROM test_effects")
        assert [r["attempt"] for r in handled] == [1, 2]  # delivered twice …
        assert [r["idem_key"] for r in effects] == ["weekly-2026-23"]  # … its effect happened once
        assert await survivor.claim("tasks") is None
    finally:
        await store.close()


async def test_a_node_whose_clock_runs_ahead_does_not_take_a_leased_message(pg_url: str) -> None:
    """On PostgreSQL the lease is decided on the database's clock: a consumer on a node five minutes
    ahead finds the message still leased (on its own clock the lease ran out long ago)."""
    store = await open_store(pg_url)
    try:
        await store.run(lambda tx: tx.execute("DELETE FROM mailbox WHERE box = ?", ("skew",)))
        honest = Mailboxes(store, owner="honest", lease_s=30)
        await honest.put("skew", "one", key="k")
        assert (msg := await honest.claim("skew")) is not None
        ahead = Mailboxes(store, clock=FakeClock(wall_start=time.time() + 300), owner="ahead")
        assert await ahead.claim("skew") is None
        assert await honest.ack(msg)
    finally:
        await store.close()


async def test_notify_wakes_a_waiting_consumer_on_another_node_without_polling(pg_url: str) -> None:
    sender_store, consumer_store = await opened(pg_url), await open_store(pg_url)
    try:
        consumer = Mailboxes(consumer_store, poll_s=3600)
        await consumer.start()
        waiting = asyncio.create_task(consumer.receive("tasks", timeout=20))
        await asyncio.sleep(0)
        await Mailboxes(sender_store).put("tasks", "wake up", key="k")
        msg = await asyncio.wait_for(waiting, 10)
        assert msg.payload == "wake up"
        assert consumer.waker.notifications >= 1
        await consumer.close()
    finally:
        await sender_store.close()
        await consumer_store.close()


async def test_polling_delivers_when_no_notification_can_arrive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.db"
    clock = FakeClock(wall_start=time.time())
    sender_store, consumer_store = await opened(url), await open_store(url, clock=clock)
    try:
        consumer = Mailboxes(consumer_store, clock=clock, poll_s=1.0)
        waiting = asyncio.create_task(consumer.receive("tasks", timeout=60))
        await wait_for(lambda: clock.sleepers > 0, what="the consumer to wait")
        await Mailboxes(sender_store).put("tasks", "polled", key="k")  # another store: no wake-up reaches
        assert not waiting.done()
        clock.advance(1.0)
        assert (await asyncio.wait_for(waiting, 10)).payload == "polled"
        await consumer.close()
    finally:
        await sender_store.close()
        await consumer_store.close()


async def test_a_consult_gets_its_reply_before_the_deadline(store_url: str) -> None:
    store = await opened(store_url)
    try:
        asker, lawyer = Mailboxes(store, owner="ceo"), Mailboxes(store, owner="lawyer")

        async def answer() -> None:
            msg = await lawyer.receive("consult:lawyer", timeout=10)
            assert await lawyer.reply(msg, f"yes: {msg.payload}")

        responder = asyncio.create_task(answer())
        reply = await asker.request("consult:lawyer", "may we post this?", key="run-1:7", deadline_s=10)
        assert reply == "yes: may we post this?"
        await responder
        # Asking again with the same key (a replayed run) returns the stored reply without a new request.
        assert (
            await asker.request("consult:lawyer", "may we post this?", key="run-1:7", deadline_s=10) == reply
        )
        await asker.close()
        await lawyer.close()
    finally:
        await store.close()


async def test_a_late_reply_is_dropped_and_the_asker_gets_consult_deadline(store_url: str) -> None:
    clock = FakeClock(wall_start=time.time())
    store = await opened(store_url, clock)
    try:
        asker = Mailboxes(store, clock=clock, owner="ceo", poll_s=1)
        slow = Mailboxes(store, clock=clock, owner="lawyer")
        asking = asyncio.create_task(asker.request("consult:lawyer", "quick?", key="run-2:3", deadline_s=5))
        await wait_for(lambda: clock.sleepers > 0, what="the request to be waiting")
        msg = await slow.claim("consult:lawyer")
        assert msg is not None
        for _ in range(6):
            await clock.jump(1)
            await wait_for(lambda: clock.sleepers > 0 or asking.done(), what="the asker to wait again")
        with pytest.raises(ConsultDeadline):
            await asyncio.wait_for(asking, 10)
        assert not await slow.reply(msg, "too late"), "a late reply must be dropped"
        row = await store.fetchone("SELECT status, reply FROM mailbox WHERE id = ?", (msg.id,))
        assert row == {"status": "expired", "reply": None}
        await asker.close()
    finally:
        await store.close()


async def test_an_expired_request_is_not_handed_to_a_consumer(store_url: str) -> None:
    clock = FakeClock(wall_start=time.time())
    store = await opened(store_url, clock)
    try:
        boxes = Mailboxes(store, clock=clock)
        await boxes.put("consult:cfo", "numbers?", key="k", deadline_at=clock.time() + 5)
        clock.advance(6)
        assert await boxes.claim("consult:cfo") is None
    finally:
        await store.close()


@pytest.mark.parametrize(("box", "key"), [("", "k"), ("tasks", "")])
async def test_empty_box_or_key_is_refused(tmp_path: Path, box: str, key: str) -> None:
    store = await opened(f"sqlite:///{tmp_path}/j.db")
    try:
        with pytest.raises(SpecError):
            await Mailboxes(store).put(box, "x", key=key)
        with pytest.raises(SpecError, match="JSON"):
            await Mailboxes(store).put("tasks", object(), key="k")
    finally:
        await store.close()


async def test_a_message_that_keeps_killing_its_consumers_becomes_a_dead_letter(store_url: str) -> None:
    clock = FakeClock(wall_start=time.time())
    store = await opened(store_url, clock)
    try:
        boxes = Mailboxes(store, clock=clock, lease_s=10, max_attempts=3)
        await boxes.put("tasks", "poison", key="p")
        await boxes.put("tasks", "fine", key="f")
        delivered = []
        for _ in range(3):  # claimed, never acknowledged (the consumer died each time)
            msg = await boxes.claim("tasks")
            assert msg is not None
            delivered.append(msg.key)
            clock.advance(11)
        assert delivered == ["p", "p", "p"]
        nxt = await boxes.claim("tasks")
        assert nxt is not None and nxt.key == "f"  # the poison message no longer blocks the box
        dead = await boxes.dead_letters("tasks")
        assert [(d.key, d.attempts) for d in dead] == [("p", 3)]
        assert await boxes.retry(dead[0].id)
        assert await boxes.dead_letters("tasks") == []
        again = await boxes.claim("tasks")
        assert again is not None and (again.key, again.attempts) == ("p", 1)
    finally:
        await store.close()
