"""Process isolation: SIGKILL → restarted child answering a call, and idle memory per child.

Measured in one run, side by side:

* **beamish** — a ``one_for_one`` supervisor over one ``isolation="process"`` child. Each round
  SIGKILLs the child's OS process and times until the *restarted* child has answered a call: death
  noticed (socket EOF, exit status read from /proc), supervisor restart, the node's spare child
  taking the request (or a fork from the zygote when no spare is ready), the child's ``init``, and one
  call round trip. Two series: back to back (the next kill as soon as the restarted child answered,
  so the spare made meanwhile is often not ready yet: the worst case, and the one the target is
  for), and from rest (``SETTLE_S`` between rounds, as crashes come in life).
* **bare fork** — the floor: ``multiprocessing`` with the ``fork`` start method, no supervisor, no
  protocol: SIGKILL the process, join it, start a new one and ping it over a ``Pipe``.

Memory: USS and PSS of idle children from ``/proc/PID/smaps_rollup``, for beamish children and for
bare ``multiprocessing`` fork children of this process.

Targets (DESIGN.md, issue 3): restart median ≤ 10 ms and ≤ 3 times the bare fork; USS ≤ 3 MB per child.
Run: ``.venv/bin/python benchmarks/process_restart.py [--rounds 200]``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from beamish import Actor, ChildSpec, Node, SupervisorSpec
from beamish.runtime._process import zygote_of

IDLE_CHILDREN = 10
#: Rest between rounds in the "settled" series (the spare is made again meanwhile).
SETTLE_S = 0.02


class Echo(Actor):
    """The child under test: answers ``pid`` with its pid, anything else with itself."""

    async def handle_call(self, request: Any) -> Any:
        return os.getpid() if request == "pid" else request


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3), "p99_ms": round(p99 * 1e3, 3)}


def smaps(pid: int) -> dict[str, int]:
    """USS and PSS in KiB (USS = private clean + private dirty)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return {"uss_kb": fields["Private_Clean"] + fields["Private_Dirty"], "pss_kb": fields["Pss"]}


# -- bare multiprocessing ---------------------------------------------------------------------------
def _serve(conn: Connection) -> None:
    while True:
        conn.send(conn.recv())


def bare_fork(rounds: int) -> tuple[list[float], list[dict[str, int]]]:
    ctx = mp.get_context("fork")
    conn, theirs = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(theirs,), daemon=True)
    proc.start()
    samples = []
    for _ in range(rounds):
        conn.send("ping")
        conn.recv()
        t0 = time.perf_counter()
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        conn, theirs = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(theirs,), daemon=True)
        proc.start()
        conn.send("ping")
        conn.recv()
        samples.append(time.perf_counter() - t0)
    idle = []
    for _ in range(IDLE_CHILDREN):
        c, t = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(t,), daemon=True)
        p.start()
        c.send("ping")
        c.recv()
        idle.append((p, c))
    time.sleep(0.2)  # let them settle idle before reading their memory
    memory = [smaps(p.pid) for p, _ in idle if p.pid is not None]
    for p, _ in [*idle, (proc, conn)]:
        p.kill()
        p.join()
    return samples, memory


# -- beamish ----------------------------------------------------------------------------------------
async def beamish_restarts(
    rounds: int,
) -> tuple[list[float], list[float], list[dict[str, int]], dict[str, int], dict[str, list[float]]]:
    async with Node() as node:
        spec = SupervisorSpec(
            [ChildSpec("echo", Echo, isolation="process")], intensity=rounds * 10, period=1.0
        )
        samples: list[float] = []
        settled: list[float] = []
        async with node.events() as events:
            sup = await node.start_supervisor(spec)
            (info,) = await sup.which_children()
            ref = info.ref
            assert ref is not None
            for i in range(2 * rounds):
                if i >= rounds:  # a crash is an event, not a loop: start each round from rest
                    await asyncio.sleep(SETTLE_S)
                pid = await ref.call("pid")
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                while (await asyncio.wait_for(events.next("child.started"), 10)).data["ref"] == ref.id:
                    pass  # the start event of the incarnation just killed
                (info,) = await sup.which_children()
                ref = info.ref
                assert ref is not None
                assert await ref.call("ping") == "ping"
                (samples if i < rounds else settled).append(time.perf_counter() - t0)
        calls = {"process": await call_times(ref), "task": await call_times(await node.spawn(Echo))}
        idle_spec = SupervisorSpec(
            [ChildSpec(f"idle{i}", Echo, isolation="process") for i in range(IDLE_CHILDREN)]
        )
        idle_sup = await node.start_supervisor(idle_spec, name="idle")
        pids = [await info.ref.call("pid") for info in await idle_sup.which_children() if info.ref]
        await asyncio.sleep(0.2)  # let them settle idle before reading their memory
        memory = [smaps(pid) for pid in pids]
        client = zygote_of(node)
        assert client is not None and client.pid is not None
        zygote = smaps(client.pid)
    return samples, settled, memory, zygote, calls


async def call_times(ref: Any, n: int = 2000) -> list[float]:
    """Round trips of ``ref.call`` (the cost of the wire, beside a task actor's in-loop call)."""
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await ref.call(i)
        samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds

    bare, bare_memory = bare_fork(rounds)
    ours, settled, our_memory, zygote, calls = asyncio.run(beamish_restarts(rounds))
    pc, tc = quantiles(calls["process"]), quantiles(calls["task"])

    b, o, s = quantiles(bare), quantiles(ours), quantiles(settled)
    ratio = round(o["median_ms"] / b["median_ms"], 2)
    settled_ratio = round(s["median_ms"] / b["median_ms"], 2)
    uss = statistics.median(m["uss_kb"] for m in our_memory) / 1024
    pss = statistics.median(m["pss_kb"] for m in our_memory) / 1024
    bare_uss = statistics.median(m["uss_kb"] for m in bare_memory) / 1024
    bare_pss = statistics.median(m["pss_kb"] for m in bare_memory) / 1024
    print(f"SIGKILL -> restarted child answers a call, {rounds} rounds each")
    for label, q, note in (
        ("beamish, back to back", o, f"{ratio}x"),
        ("beamish, from rest   ", s, f"{settled_ratio}x"),
        ("bare mp fork+respawn ", b, "(peer)"),
    ):
        print(f"  {label} : median {q['median_ms']:7.3f} ms   p99 {q['p99_ms']:7.3f} ms   {note}")
    print("  target: back to back <= 3x the bare fork and <= 10 ms (median)")
    print("call round trip, 2000 calls")
    print(
        f"  process child         : median {pc['median_ms'] * 1e3:7.1f} us   p99 {pc['p99_ms'] * 1e3:7.1f} us"
    )
    print(
        f"  task actor            : median {tc['median_ms'] * 1e3:7.1f} us   p99 {tc['p99_ms'] * 1e3:7.1f} us"
    )
    print(f"idle memory per child, median of {IDLE_CHILDREN}")
    print(f"  beamish process child : USS {uss:5.2f} MB   PSS {pss:5.2f} MB   (target USS <= 3 MB)")
    print(f"  bare mp fork child    : USS {bare_uss:5.2f} MB   PSS {bare_pss:5.2f} MB")
    z_uss, z_pss = zygote["uss_kb"] / 1024, zygote["pss_kb"] / 1024
    print(f"  zygote (once per node): USS {z_uss:5.2f} MB   PSS {z_pss:5.2f} MB")
    result = {
        "benchmark": "process_restart",
        "rounds": rounds,
        "restart_median_ms": o["median_ms"],
        "restart_p99_ms": o["p99_ms"],
        "bare_fork_median_ms": b["median_ms"],
        "bare_fork_p99_ms": b["p99_ms"],
        "ratio_vs_bare_fork": ratio,
        "settled_restart_median_ms": s["median_ms"],
        "settled_restart_p99_ms": s["p99_ms"],
        "settled_ratio_vs_bare_fork": settled_ratio,
        "call_process_median_us": round(pc["median_ms"] * 1e3, 1),
        "call_task_median_us": round(tc["median_ms"] * 1e3, 1),
        "child_uss_mb": round(uss, 2),
        "child_pss_mb": round(pss, 2),
        "bare_child_uss_mb": round(bare_uss, 2),
        "bare_child_pss_mb": round(bare_pss, 2),
        "zygote_uss_mb": round(zygote["uss_kb"] / 1024, 2),
        "targets": {"restart_median_ms": 10.0, "ratio_vs_bare_fork": 3.0, "child_uss_mb": 3.0},
        "met": o["median_ms"] <= 10.0 and ratio <= 3.0 and uss <= 3.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
