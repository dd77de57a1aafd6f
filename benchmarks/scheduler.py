"""Scheduler and bus figures, each beside a peer measured in the same run.

1. Fire lateness of 1,000 schedules due at the same instant (the 14:00 stampede), dispatch time minus
   due time, p50/p99 — beside bare asyncio timers (``loop.call_at``) due at the same instant: the
   floor of an in-memory scheduler with no store and no exactly-once.
2. Durable mailbox throughput in-node (put + claim + ack per message) — beside the same three raw
   SQL statements on the same store with no bus layer.
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=os.environ.get("BEAMISH_BENCH_PG"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="beamish-bench-")
    sqlite = f"sqlite:///{tmp}/journal.db"

    ours_late = await lateness_ours(f"sqlite:///{tmp}/sched.db")
    peer_late = await lateness_peer()
    p50, p99 = pct(ours_late, 0.5), pct(ours_late, 0.99)
    b50, b99 = pct(peer_late, 0.5), pct(peer_late, 0.99)
    print(f"fire lateness, {N_SCHEDULES} schedules due at once x{ROUNDS} (SQLite store)")
    print(f"  beamish      p50 {p50 * 1e3:8.1f} ms   p99 {p99 * 1e3:8.1f} ms")
    print(f"  asyncio call_at p50 {b50 * 1e3:8.2f} ms   p99 {b99 * 1e3:8.2f} ms  (in memory, no store)")

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
    xrpc, xpeer = await rpc_across_processes(x_url)
    x50, p50x = statistics.median(xrpc), statistics.median(xpeer)
    print(f"consult round trip across processes ({x_kind}): p50 {x50 * 1e3:.2f} ms p99 "
          f"{pct(xrpc, 0.99) * 1e3:.2f} ms   pipe: p50 {p50x * 1e6:.1f} us")  # fmt: skip

    figures = {
        "benchmark": "scheduler",
        "schedules": N_SCHEDULES,
        "fire_lateness_p50_ms": round(p50 * 1e3, 2),
        "fire_lateness_p99_ms": round(p99 * 1e3, 2),
        "peer_asyncio_lateness_p50_ms": round(b50 * 1e3, 3),
        "peer_asyncio_lateness_p99_ms": round(b99 * 1e3, 3),
        "mailbox_msgs_per_s": round(rate),
        "peer_raw_sql_msgs_per_s": round(raw_rate),
        "mailbox_vs_raw_sql": round(rate / raw_rate, 3),
        "consult_rtt_in_node_p50_ms": round(r50 * 1e3, 3),
        "peer_asyncio_rtt_p50_ms": round(q50 * 1e3, 4),
        "consult_rtt_cross_process_p50_ms": round(x50 * 1e3, 3),
        "cross_process_transport": x_kind,
        "peer_pipe_rtt_p50_ms": round(p50x * 1e3, 4),
        "targets": {"fire_lateness_p99_ms": 1000, "scheduler_success_rate": 0.999},
        "python": sys.version.split()[0],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
