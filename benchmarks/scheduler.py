"""Scheduler and bus figures, each beside a peer measured in the same run.

1. Fire lateness of 1,000 schedules due at the same instant (the 14:00 stampede), hand-over time minus
   due time, p50/p99 — beside APScheduler 3 (AsyncIOScheduler) with its durable SQLAlchemy job store
   on SQLite and with its memory store (when installed: a peer for this benchmark only), and bare
   asyncio timers (``loop.call_at``): the floor of an in-memory scheduler with no store.
2. Bus throughput: in-node topics beside a bare ``asyncio.Queue``; the durable mailbox in-node
   (put + claim + ack per message) beside the same three raw SQL statements on the same store; and
   from one process to a consumer process.
3. Consult round trip (request → reply) in-node and across processes (PostgreSQL NOTIFY when
   available, else SQLite with polling) — beside an in-memory asyncio round trip and a pipe round
   trip between two processes.

Usage: .venv/bin/python benchmarks/scheduler.py [--pg postgresql://…] ; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from beamish._clock import SystemClock
from beamish.bus import Mailboxes
from beamish.journal import Store, open_store
from beamish.schedule import Schedule, Scheduler

N_SCHEDULES = 1000
ROUNDS = 3
N_MESSAGES = 500
N_RPC = 100
RUN = os.urandom(4).hex()  # keys unique per run: a reused store must not answer from old replies


class OffsetClock(SystemClock):
    """Real time shifted so that the next minute boundary is a second away (no minute-long waits)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def aim(self, lead_s: float) -> float:
        """Shift so the next minute boundary is ``lead_s`` seconds from now; returns that boundary."""
        now = time.time() + self.offset
        boundary = (now // 60 + 1) * 60
        self.offset += boundary - now - lead_s
        return boundary


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lateness_ours(url: str) -> list[float]:
    clock = OffsetClock()
    store = await open_store(url, clock=clock)
    try:

        async def submit(agent: str, input: Any, *, run_id: str) -> object:
            return run_id

        sched = Scheduler(store, submit, clock=clock, poll_s=0.5)
        for i in range(N_SCHEDULES):
            await sched.add(f"s{i}", Schedule("* * * * *"), "agent", i)
        late: list[float] = []
        for _ in range(ROUNDS):
            boundary = clock.aim(1.0)
            await sched.run_pass()  # nothing due yet
            task = asyncio.create_task(sched.run_forever())
            while True:
                row = await store.fetchone(
                    "SELECT COUNT(*) AS n FROM schedule_fires WHERE nominal_at = ? AND status = 'dispatched'",
                    (boundary,),
                )
                if row and int(row["n"]) == N_SCHEDULES:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            rows = await store.fetchall(
                "SELECT dispatched_at - due_at AS late FROM schedule_fires WHERE nominal_at = ?", (boundary,)
            )
            late.extend(float(r["late"]) for r in rows)
        return late
    finally:
        await store.close()


async def lateness_peer() -> list[float]:
    loop = asyncio.get_running_loop()
    late: list[float] = []
    for _ in range(ROUNDS):
        due = loop.time() + 0.5
        done = asyncio.Event()
        count = [0]

        def fire(due: float = due, count: list[int] = count, done: asyncio.Event = done) -> None:
            late.append(loop.time() - due)
            count[0] += 1
            if count[0] == N_SCHEDULES:
                done.set()

        for _ in range(N_SCHEDULES):
            loop.call_at(due, fire)
        await done.wait()
    return late


_APS_LATE: list[float] = []


async def aps_job(due: float) -> None:
    """An APScheduler job: records how late it started."""
    _APS_LATE.append(time.time() - due)


async def lateness_apscheduler(tmp: str, durable: bool) -> list[float] | None:
    """APScheduler 3 (AsyncIOScheduler), 1,000 jobs due at one instant; its SQLAlchemy store on SQLite
    when ``durable``. None when APScheduler is not installed (it is a peer for this benchmark only)."""
    try:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.date import DateTrigger
    except ImportError:
        return None
    from datetime import UTC, datetime, timedelta

    def make(name: str) -> Any:
        stores: dict[str, Any] = {}
        if durable:
            from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

            stores["default"] = SQLAlchemyJobStore(url=f"sqlite:///{tmp}/{name}.db")
        sched = AsyncIOScheduler(
            jobstores=stores, job_defaults={"misfire_grace_time": 3600, "coalesce": False}
        )
        sched.start(paused=True)
        return sched

    # Adding jobs to the durable store is slow: time 50 adds on a scratch store, so the measured jobs
    # fall due only after all 1,000 are in (lateness is then the scheduler's, not the setup's).
    scratch, t = make("aps-scratch"), time.perf_counter()
    far = datetime.now(UTC) + timedelta(days=1)
    for i in range(50):
        scratch.add_job(aps_job, DateTrigger(run_date=far), args=[0.0], id=f"s{i}")
    scratch.shutdown(wait=False)
    setup_s = (time.perf_counter() - t) * N_SCHEDULES / 50
    sched = make("aps")
    _APS_LATE.clear()
    due = datetime.now(UTC) + timedelta(seconds=1.0 + 2 * setup_s)
    for i in range(N_SCHEDULES):
        sched.add_job(aps_job, DateTrigger(run_date=due), args=[due.timestamp()], id=f"j{i}")
    if datetime.now(UTC) >= due:
        print("  (APScheduler setup overran the due time; its lateness below includes setup)")
    sched.resume()
    while len(_APS_LATE) < N_SCHEDULES:
        await asyncio.sleep(0.05)
    sched.shutdown(wait=False)
    return list(_APS_LATE)


async def pubsub_rate() -> tuple[float, float]:
    """In-node topic messages delivered per second (one subscriber) beside a bare asyncio.Queue."""
    from beamish.bus import PubSub

    n = 100_000
    bus = PubSub(buffer=n)
    sub = bus.subscribe("t")
    t = time.perf_counter()
    for i in range(n):
        bus.publish("t", i)
    while sub.get_nowait() is not None:
        pass
    ours = n / (time.perf_counter() - t)
    queue: asyncio.Queue[int] = asyncio.Queue()
    t = time.perf_counter()
    for i in range(n):
        queue.put_nowait(i)
    while not queue.empty():
        queue.get_nowait()
    return ours, n / (time.perf_counter() - t)


def _consumer(url: str, n: int) -> None:
    async def main() -> None:
        store = await open_store(url)
        boxes = Mailboxes(store, owner="consumer", poll_s=0.5)
        await boxes.start()
        for _ in range(n):
            msg = await boxes.receive("xput", timeout=30)
            await boxes.ack(msg)
        await boxes.close()
        await store.close()

    asyncio.run(main())


async def mailbox_rate_across_processes(url: str) -> float:
    """Messages per second from this process to a consumer process (put here; claim + ack there)."""
    ctx = mp.get_context("spawn")
    store = await open_store(url)
    boxes = Mailboxes(store, owner="producer")
    proc = ctx.Process(target=_consumer, args=(url, N_MESSAGES + 1))
    proc.start()
    await boxes.put("xput", "warm", key=f"{RUN}-warm")
    while True:  # the consumer is up once the warm-up message is acknowledged
        row = await store.fetchone("SELECT status FROM mailbox WHERE idem_key = ?", (f"{RUN}-warm",))
        if row is not None and row["status"] == "acked":
            break
        await asyncio.sleep(0.01)
    t = time.perf_counter()
    for i in range(N_MESSAGES):
        await boxes.put("xput", {"i": i}, key=f"{RUN}-x{i}")
    await asyncio.get_running_loop().run_in_executor(None, proc.join, 60)
    rate = N_MESSAGES / (time.perf_counter() - t)
    await store.close()
    return rate


async def mailbox_rate(store: Store) -> tuple[float, float]:
    boxes = Mailboxes(store, owner="bench")
    t = time.perf_counter()
    for i in range(N_MESSAGES):
        await boxes.put("bench", {"i": i}, key=f"{RUN}-m{i}")
        msg = await boxes.claim("bench")
        assert msg is not None
        await boxes.ack(msg)
    ours = N_MESSAGES / (time.perf_counter() - t)
    await store.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, body TEXT, status TEXT, owner TEXT)"
    )
    t = time.perf_counter()
    for i in range(N_MESSAGES):
        await store.execute(
            "INSERT INTO bench_raw (id, body, status) VALUES (?, ?, 'ready')", (i, f'{{"i":{i}}}')
        )
        await store.run(
            lambda tx: tx.execute(
                "UPDATE bench_raw SET status = 'claimed', owner = 'x' WHERE id = "
                "(SELECT id FROM bench_raw WHERE status = 'ready' ORDER BY id LIMIT 1)"
            )
        )
        await store.execute("UPDATE bench_raw SET status = 'acked' WHERE id = ?", (i,))
    peer = N_MESSAGES / (time.perf_counter() - t)
    return ours, peer


async def rpc_in_node(store: Store) -> tuple[list[float], list[float]]:
    asker, replier = Mailboxes(store, owner="a", poll_s=0.5), Mailboxes(store, owner="b", poll_s=0.5)
    await asker.start()

    async def serve() -> None:
        for _ in range(N_RPC):
            msg = await replier.receive("rpc", timeout=10)
            await replier.reply(msg, msg.payload)

    server = asyncio.create_task(serve())
    ours: list[float] = []
    for i in range(N_RPC):
        t = time.perf_counter()
        assert await asker.request("rpc", i, key=f"{RUN}-q{i}", deadline_s=10) == i
        ours.append(time.perf_counter() - t)
    await server
    await asker.close()
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue()

    async def echo() -> None:
        for _ in range(N_RPC):
            value, fut = await queue.get()
            fut.set_result(value)

    echoer = asyncio.create_task(echo())
    peer: list[float] = []
    for i in range(N_RPC):
        t = time.perf_counter()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await queue.put((i, fut))
        assert await fut == i
        peer.append(time.perf_counter() - t)
    await echoer
    return ours, peer


def _replier(url: str, n: int) -> None:
    async def main() -> None:
        store = await open_store(url)
        boxes = Mailboxes(store, owner="remote", poll_s=0.5)
        await boxes.start()
        for _ in range(n):
            msg = await boxes.receive("rpc-x", timeout=30)
            await boxes.reply(msg, msg.payload)
        await boxes.close()
        await store.close()

    asyncio.run(main())


def _pipe_echo(conn: Any, n: int) -> None:
    for _ in range(n):
        conn.send(conn.recv())


async def rpc_across_processes(url: str) -> tuple[list[float], list[float]]:
    ctx = mp.get_context("spawn")
    store = await open_store(url)
    asker = Mailboxes(store, owner="asker", poll_s=0.5)
    await asker.start()
    proc = ctx.Process(target=_replier, args=(url, N_RPC + 1))
    proc.start()
    await asker.request("rpc-x", -1, key=f"{RUN}-warm", deadline_s=30)  # the replier is up
    ours: list[float] = []
    for i in range(N_RPC):
        t = time.perf_counter()
        assert await asker.request("rpc-x", i, key=f"{RUN}-x{i}", deadline_s=10) == i
        ours.append(time.perf_counter() - t)
    proc.join(30)
    await asker.close()
    await store.close()
    parent, child = ctx.Pipe()
    echo = ctx.Process(target=_pipe_echo, args=(child, N_RPC))
    echo.start()
    peer: list[float] = []
    for i in range(N_RPC):
        t = time.perf_counter()
        parent.send(i)
        assert parent.recv() == i
        peer.append(time.perf_counter() - t)
    echo.join(10)
    return ours, peer


def ms(v: float) -> float:
    return round(v * 1e3, 3)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=os.environ.get("BEAMISH_BENCH_PG"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="beamish-bench-")
    sqlite = f"sqlite:///{tmp}/journal.db"

    ours_late = await lateness_ours(f"sqlite:///{tmp}/sched.db")
    floor = await lateness_peer()
    aps_mem = await lateness_apscheduler(tmp, durable=False)
    aps_db = await lateness_apscheduler(tmp, durable=True)
    p50, p99 = pct(ours_late, 0.5), pct(ours_late, 0.99)
    print(f"fire lateness, {N_SCHEDULES} schedules due at one instant (the 14:00 stampede), p50 / p99")
    print(f"  beamish (SQLite store, exactly once)   {p50 * 1e3:9.1f} / {p99 * 1e3:9.1f} ms")
    for label, late in (
        ("APScheduler 3, SQLAlchemy+SQLite store", aps_db),
        ("APScheduler 3, memory store", aps_mem),
    ):
        if late is None:
            print(f"  {label:38s} (not installed: pip install -e '.[bench]')")
        else:
            print(f"  {label:38s} {pct(late, 0.5) * 1e3:9.1f} / {pct(late, 0.99) * 1e3:9.1f} ms")
    f50, f99 = pct(floor, 0.5), pct(floor, 0.99)
    print(f"  asyncio call_at (floor, no store)      {f50 * 1e3:9.1f} / {f99 * 1e3:9.1f} ms")

    ps, ps_peer = await pubsub_rate()
    print(
        f"in-node topic: {ps:10.0f} msg/s   asyncio.Queue: {ps_peer:10.0f} msg/s (ratio {ps / ps_peer:.2f})"
    )
    store = await open_store(sqlite)
    rate, raw_rate = await mailbox_rate(store)
    print(f"durable mailbox, put+claim+ack (SQLite): {rate:8.0f} msg/s   raw SQL: {raw_rate:8.0f} msg/s "
          f"(ratio {rate / raw_rate:.2f})")  # fmt: skip
    rpc, rpc_peer = await rpc_in_node(store)
    await store.close()
    r50, q50 = statistics.median(rpc), statistics.median(rpc_peer)
    print(f"consult round trip in-node (SQLite): p50 {r50 * 1e3:.2f} ms p99 {pct(rpc, 0.99) * 1e3:.2f} ms   "
          f"asyncio: p50 {q50 * 1e6:.1f} us")  # fmt: skip

    x_url = args.pg or sqlite
    x_kind = "PostgreSQL NOTIFY" if args.pg else "SQLite polling 0.5 s"
    x_rate = await mailbox_rate_across_processes(x_url)
    print(f"durable mailbox across processes ({x_kind}): {x_rate:8.0f} msg/s")
    xrpc, xpeer = await rpc_across_processes(x_url)
    x50, p50x = statistics.median(xrpc), statistics.median(xpeer)
    print(f"consult round trip across processes ({x_kind}): p50 {x50 * 1e3:.2f} ms p99 "
          f"{pct(xrpc, 0.99) * 1e3:.2f} ms   pipe: p50 {p50x * 1e6:.1f} us")  # fmt: skip

    figures: dict[str, Any] = {
        "benchmark": "scheduler",
        "schedules": N_SCHEDULES,
        "fire_lateness_p50_ms": ms(p50),
        "fire_lateness_p99_ms": ms(p99),
        "peer_apscheduler_sqlite_p50_ms": None if aps_db is None else ms(pct(aps_db, 0.5)),
        "peer_apscheduler_sqlite_p99_ms": None if aps_db is None else ms(pct(aps_db, 0.99)),
        "peer_apscheduler_memory_p99_ms": None if aps_mem is None else ms(pct(aps_mem, 0.99)),
        "peer_asyncio_call_at_p99_ms": ms(pct(floor, 0.99)),
        "lateness_p99_vs_apscheduler_sqlite": None if aps_db is None else round(p99 / pct(aps_db, 0.99), 3),
        "pubsub_msgs_per_s": round(ps),
        "peer_asyncio_queue_msgs_per_s": round(ps_peer),
        "mailbox_msgs_per_s": round(rate),
        "peer_raw_sql_msgs_per_s": round(raw_rate),
        "mailbox_vs_raw_sql": round(rate / raw_rate, 3),
        "mailbox_cross_process_msgs_per_s": round(x_rate),
        "consult_rtt_in_node_p50_ms": ms(r50),
        "peer_asyncio_rtt_p50_ms": round(q50 * 1e3, 4),
        "consult_rtt_cross_process_p50_ms": ms(x50),
        "consult_rtt_cross_process_p99_ms": ms(pct(xrpc, 0.99)),
        "cross_process_transport": x_kind,
        "peer_pipe_rtt_p50_ms": round(p50x * 1e3, 4),
        "targets": {"fire_lateness_p99_ms": 1000, "scheduler_success_rate": 0.999},
        "python": sys.version.split()[0],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
