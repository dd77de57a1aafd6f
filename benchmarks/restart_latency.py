"""Restart latency, spawn time and memory of beamish actors, beside Erlang/OTP measured in the same run.

    .venv/bin/python benchmarks/restart_latency.py                # asyncio's default loop
    .venv/bin/python benchmarks/restart_latency.py --loop uvloop  # the optional `uvloop` extra

Figures (each beside OTP, run from ``benchmarks/otp_restart.escript`` when ``escript`` is installed):

* one_for_one restart: kill the child (OTP ``exit(Pid, kill)``) → the new child's ``init`` reached;
  median and p99 in µs. Restart intensity never trips; the supervisor is recreated every 100 restarts.
* one_for_one crash restart: the same, the child crashing instead (an exception in ``handle_cast``;
  OTP: ``erlang:error`` in ``handle_cast``) → the new child's ``init`` reached. A crash also runs the
  cast, raises, keeps the exception (OTP: the stack trace) and exits through ``terminate``.
* one_for_all with 8 children: kill child 1 → the 8th restarted child's ``init`` reached.
* spawn time per actor, starting 100,000 idle actors one after the other (OTP: ``gen_server:start``).
* memory per idle actor across 100,000 (Python: bytes traced by ``tracemalloc``; OTP:
  ``erlang:memory(processes)`` growth).

Ends with exactly one JSON line: figures, ratios, targets and whether each target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from beamish import Actor, ActorRef, ChildSpec, Node, Shutdown, SupervisorSpec

HERE = Path(__file__).resolve().parent
TARGETS = {"one_for_one_median": 4.0, "one_for_one_crash_median": 2.0, "memory": 2.0, "spawn": 3.0}
AIMS = {"one_for_one_median": 2.0, "memory": 1.5}


class CrashOnCast(Exception):
    """What a child raises in ``handle_cast`` on purpose: the crash path of a restart."""


class Probe:
    """Where restarted children report: their refs, and the time the awaited ``init`` was reached."""

    def __init__(self) -> None:
        self.refs: dict[int, ActorRef] = {}
        self.t1 = 0
        self.fut: asyncio.Future[None] | None = None


class Child(Actor):
    async def init(self, index: int, last: int, probe: Probe) -> None:
        probe.refs[index] = self.ref
        if index == last:
            probe.t1 = time.perf_counter_ns()
            fut = probe.fut
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def handle_cast(self, message: object) -> None:
        raise CrashOnCast(message)


class Idle(Actor):
    """An actor that waits for mail it never gets."""


def percentile(sorted_values: list[float], q: float) -> float:
    index = max(0, min(len(sorted_values) - 1, int(len(sorted_values) * q + 0.999999) - 1))
    return sorted_values[index]


async def restarts(node: Node, strategy: str, children: int, count: int, how: str = "kill") -> list[float]:
    """Restart latencies (µs, sorted): child 1 killed (``how="kill"``) or crashing in ``handle_cast``."""
    loop = asyncio.get_running_loop()
    probe = Probe()
    spec = SupervisorSpec(
        [ChildSpec(i, Child, args=(i, children, probe)) for i in range(1, children + 1)],
        strategy=strategy,  # type: ignore[arg-type]
        intensity=10**9,
        period=1.0,
    )
    times: list[float] = []
    sup: ActorRef | None = None
    for i in range(count):
        if i % 100 == 0:
            if sup is not None:
                await sup.stop(Shutdown())
            sup = await node.start_supervisor(spec, name=None)
        victim = probe.refs[1]
        fut = probe.fut = loop.create_future()
        t0 = time.perf_counter_ns()
        if how == "kill":
            victim.kill()
        else:
            victim.cast("crash")
        await fut
        times.append((probe.t1 - t0) / 1000)
    if sup is not None:
        await sup.stop(Shutdown())
    times.sort()
    return times


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def spawn_idle(node: Node, n: int) -> tuple[float, float]:
    """(µs per spawn, RSS growth per actor in bytes)."""
    gc.collect()
    rss0 = rss_bytes()
    refs: list[ActorRef] = []
    t0 = time.perf_counter_ns()
    for _ in range(n):
        refs.append(await node.spawn(Idle))
    t1 = time.perf_counter_ns()
    gc.collect()
    rss = (rss_bytes() - rss0) / n
    for ref in refs:
        ref.kill()
    return (t1 - t0) / 1000 / n, rss


async def traced_memory(node: Node, n: int) -> float:
    """Bytes allocated per idle actor (tracemalloc), everything the node keeps for it included."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    refs = [await node.spawn(Idle) for _ in range(n)]
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    for ref in refs:
        ref.kill()
    return used / n


async def measure(args: argparse.Namespace) -> dict[str, float]:
    async with Node(loop_watch_s=None) as node:  # spawning 100,000 actors blocks the loop on purpose
        await restarts(node, "one_for_one", 1, 500)  # warm up
        one = await restarts(node, "one_for_one", 1, args.restarts)
        await restarts(node, "one_for_one", 1, 500, "crash")
        crash = await restarts(node, "one_for_one", 1, args.restarts, "crash")
        await restarts(node, "one_for_all", 8, 100)
        alls = await restarts(node, "one_for_all", 8, args.all_restarts)
        spawn_us, rss = await spawn_idle(node, args.actors)
        memory = await traced_memory(node, args.actors)
    return {
        "one_for_one_median_us": statistics.median(one),
        "one_for_one_p99_us": percentile(one, 0.99),
        "one_for_one_crash_median_us": statistics.median(crash),
        "one_for_one_crash_p99_us": percentile(crash, 0.99),
        "one_for_all_8_median_us": statistics.median(alls),
        "one_for_all_8_p99_us": percentile(alls, 0.99),
        "spawn_us": spawn_us,
        "memory_bytes": memory,
        "rss_bytes": rss,
    }


def measure_otp(args: argparse.Namespace) -> dict[str, float] | None:
    escript = shutil.which("escript")
    if escript is None:
        print("escript not found: OTP figures skipped", file=sys.stderr)
        return None
    script = HERE / "otp_restart.escript"
    cmd = [escript, str(script), str(args.restarts), str(args.all_restarts), str(args.actors)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout
    figures: dict[str, float] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "otp_release":
            figures["otp_release"] = float(value)
        elif value:
            figures[key] = float(value)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--restarts", type=int, default=20_000)
    parser.add_argument("--all-restarts", type=int, default=5_000)
    parser.add_argument("--actors", type=int, default=100_000)
    args = parser.parse_args()

    otp = measure_otp(args)
    if args.loop == "uvloop":
        import uvloop

        ours = uvloop.run(measure(args))
    else:
        ours = asyncio.run(measure(args))

    rows = [
        ("one_for_one restart median (µs)", "one_for_one_median_us", "one_for_one_median"),
        ("one_for_one restart p99 (µs)", "one_for_one_p99_us", None),
        ("one_for_one crash restart median (µs)", "one_for_one_crash_median_us", "one_for_one_crash_median"),
        ("one_for_one crash restart p99 (µs)", "one_for_one_crash_p99_us", None),
        ("one_for_all x8 restart median (µs)", "one_for_all_8_median_us", None),
        ("one_for_all x8 restart p99 (µs)", "one_for_all_8_p99_us", None),
        ("spawn per actor (µs)", "spawn_us", "spawn"),
        ("memory per idle actor (bytes)", "memory_bytes", "memory"),
    ]
    print(
        f"beamish on {args.loop} (Python {sys.version.split()[0]}) vs Erlang/OTP"
        f" {int(otp['otp_release']) if otp else '-'}, same run"
    )
    print(f"{'figure':38} {'beamish':>10} {'OTP':>10} {'ratio':>8} {'target':>8}")
    ratios: dict[str, float] = {}
    met: dict[str, bool] = {}
    for label, key, target_key in rows:
        peer = otp.get(key) if otp else None
        ratio = ours[key] / peer if peer else None
        target = TARGETS.get(target_key) if target_key else None
        if ratio is not None:
            ratios[key] = round(ratio, 3)
            if target is not None:
                met[target_key] = ratio <= target  # type: ignore[index]
        print(
            f"{label:38} {ours[key]:>10.1f} {peer if peer is not None else float('nan'):>10.1f}"
            f" {ratio if ratio is not None else float('nan'):>7.2f}x"
            f" {('<= ' + str(target) + 'x') if target else '':>8}"
        )
    print(f"{'RSS growth per idle actor (bytes)':38} {ours['rss_bytes']:>10.1f}")
    crash_over_kill = {
        "beamish": round(ours["one_for_one_crash_median_us"] / ours["one_for_one_median_us"], 3)
    }
    if otp and otp.get("one_for_one_crash_median_us"):
        crash_over_kill["otp"] = round(otp["one_for_one_crash_median_us"] / otp["one_for_one_median_us"], 3)
    print(
        "crash restart / kill restart (medians): "
        + ", ".join(f"{who} {ratio:.2f}x" for who, ratio in crash_over_kill.items())
    )
    result: dict[str, Any] = {
        "benchmark": "restart_latency",
        "loop": args.loop,
        "python": sys.version.split()[0],
        "beamish": {k: round(v, 3) for k, v in ours.items()},
        "otp": otp,
        "ratios": ratios,
        "crash_over_kill": crash_over_kill,
        "targets": TARGETS,
        "aims": AIMS,
        "targets_met": met,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
