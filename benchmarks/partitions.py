"""Partitions, for many machines: cluster nodes in their own network namespaces, cut off, slowed and
reset on a seeded random schedule, then the history is checked.

Each node is ``tests/cluster/_node_main.py`` (scripted agents whose one tool, ``post``, appends an
effect line naming the node, the agent and the lease epoch it acted under), started with ``ip netns
exec`` in its own namespace and reaching PostgreSQL through its own forwarder (``_netns.py``). A
*schedule* submits a few runs, then applies one to three faults at random offsets — a cut link
(``ip link set down``), a stall (all bytes held), added latency, a reset of every session, a split
between the nodes — heals, and waits for every run. One node start serves many schedules.

The checker reads the history — every effect (node, unit, lease epoch, time), every node's held
units over time (its own lines), every tick of a per-minute schedule that starts minutes behind, and
every run — and counts violations of:

- fencing: one unit's effects under one lease epoch come from one node, and no effect under an older
  epoch follows one under a newer epoch;
- no effect twice (one idempotency key, one line);
- no tick lost or doubled: every minute from the schedule's first cursor to its last has one fire and
  one run;
- every run finishes (succeeds) after the heal;
- a node cut off from the database (link down or stalled for longer than a lease) holds no unit once
  its lease has run out, and acts for none after that.

It measures the time for a cut-off node's units to be held elsewhere. Short mode (CI): 50 schedules of
a couple of seconds. ``--schedules N`` or ``BEAMISH_PARTITION_SCHEDULES`` for a long run. Needs root
for ``ip netns``; without it the script says so and exits 2. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))
from _netns import Forwarder, Net, netns_unavailable

ROOT = Path(__file__).resolve().parents[1]
NODE_MAIN = ROOT / "tests" / "cluster" / "_node_main.py"
PG_DSN = os.environ.get("BEAMISH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FAULT_KINDS = ("cut", "stall", "delay", "reset", "split")
TARGETS = {
    "violations": 0,
    "schedules_min": 50,
    "stop_within_lease": True,
}


@dataclass
class Fault:
    kind: str
    node: int
    start: float  # wall time
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Node:
    node_id: str
    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                line.setdefault("t", time.time())
                self.lines.append(line)
                if line.get("ready"):
                    self.ready.set()


class Suite:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.net = Net(args.nodes)
        self.forwarders: list[Forwarder] = []
        self.nodes: list[Node] = []
        self.faults: list[Fault] = []
        self.runs: list[str] = []
        self.heal_to_done: list[float] = []
        self.unfinished: list[str] = []
        self.schema = f"p_{uuid.uuid4().hex[:10]}"
        self.effect_log = workdir / "effects.log"
        self.store: Any = None
        self.killed: list[str] = []  # nodes that did not stop within 20 s of SIGTERM

    # -- setup and teardown ---------------------------------------------------------------------------
    async def setup(self) -> None:
        import psycopg

        from beamish.journal import open_store

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'create schema "{self.schema}"')
        self.url = f"{PG_DSN}?options={quote(f'-csearch_path={self.schema}')}"
        self.store = await open_store(self.url)
        self.net.up()
        for _ in range(self.args.nodes):
            fwd = Forwarder(self.net.bridge_ip, ("127.0.0.1", 5432))
            await fwd.start()
            self.forwarders.append(fwd)
        script = self.workdir / "script.json"
        turns = [
            {"delay_s": 0.05, "tool_calls": [{"name": "post", "arguments": {"text": "hello"}}]},
            {"delay_s": 0.05, "text": "done: {task}"},
        ]
        script.write_text(json.dumps({"turns": turns}))
        await self._add_ticks()
        for i in range(self.args.nodes):
            await self._start_node(i, script)
        for node in self.nodes:
            await asyncio.wait_for(node.ready.wait(), 60)

    async def _add_ticks(self) -> None:
        """A per-minute schedule three minutes behind (misfire ``all``): the nodes race for its
        missed ticks at once, then fire one a minute while the faults go on."""
        from beamish.schedule import Schedule, Scheduler

        async def no_submit(agent: str, input: Any, *, run_id: str) -> object:
            raise AssertionError("only stores the schedule")

        await Scheduler(self.store, no_submit).add(
            "tick", Schedule("* * * * *", misfire="all", grace_s=86_400), "a0", "tick"
        )
        await self.store.execute(
            "UPDATE schedules SET cursor_at = cursor_at - 181, next_due_at = cursor_at - 181, "
            "next_nominal_at = NULL, following_at = NULL WHERE schedule_id = 'tick'"
        )
        row = await self.store.fetchone("SELECT cursor_at FROM schedules WHERE schedule_id = 'tick'")
        self.first_cursor = float(row["cursor_at"])

    async def _start_node(self, i: int, script: Path) -> None:
        node_id = f"n{i}"
        url = (
            f"postgresql://postgres@{self.net.bridge_ip}:{self.forwarders[i].port}/test"
            f"?options={quote(f'-csearch_path={self.schema}')}&connect_timeout=3"
        )
        cfg = {"url": url, "node_id": node_id, "agents": self.args.agents, "lease_s": self.args.lease,
               "script": str(script), "isolation": "task"}  # fmt: skip
        env = {**os.environ, "BEAMISH_TEST_EFFECT_LOG": str(self.effect_log)}
        with (self.workdir / f"{node_id}.log").open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", self.net.ns(i), sys.executable, str(NODE_MAIN), json.dumps(cfg),
                stdout=asyncio.subprocess.PIPE, stderr=err, env=env,
            )  # fmt: skip
        node = Node(node_id, proc)
        node.reader = asyncio.create_task(node.read())
        self.nodes.append(node)

    async def teardown(self) -> list[str]:
        """Every node stopped, namespaces and bridge deleted, schema dropped; returns leftovers."""
        left: list[str] = []
        for i in range(len(self.nodes)):
            with contextlib.suppress(Exception):
                self.net.cut(i, down=False)
        self.net.split(False)
        for fwd in self.forwarders:
            fwd.flowing.set()
            fwd.delay_s = 0.0
        for node in self.nodes:
            if node.proc.returncode is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                await asyncio.wait_for(node.proc.wait(), 20)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
                self.killed.append(node.node_id)
            if node.reader is not None:
                node.reader.cancel()
        for fwd in self.forwarders:
            await fwd.close()
        left += self.net.down()
        if self.store is not None:
            await self.store.close()
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{self.schema}" cascade')
        return left

    # -- one schedule ---------------------------------------------------------------------------------
    async def schedule(self, k: int) -> None:
        from beamish.cluster._node import WAKE_CHANNEL

        ids = []
        for j in range(self.rng.randint(2, 4)):
            agent = f"a{self.rng.randrange(self.args.agents)}"
            run, _ = await self.store.create_run(agent, f"s{k} r{j}", run_id=f"s{k}-r{j}")
            await self.store.notify(WAKE_CHANNEL, agent)
            ids.append(run.run_id)
        self.runs += ids
        plan = [self._pick() for _ in range(self.rng.randint(1, 3))]
        await asyncio.gather(*(self._apply(*p) for p in plan))
        healed = time.monotonic()
        took = await self._finished(ids, self.args.finish_timeout)
        if took is None:
            self.unfinished += ids
        else:
            self.heal_to_done.append(took - healed)

    def _pick(self) -> tuple[str, int, float, float]:
        kind = self.rng.choice(FAULT_KINDS)
        node = self.rng.randrange(self.args.nodes)
        offset = self.rng.uniform(0.0, self.args.window * 0.4)
        # half of the cuts and stalls outlast the lease, so units must move
        duration = self.rng.uniform(0.2, self.args.window)
        return kind, node, offset, duration

    async def _apply(self, kind: str, node: int, offset: float, duration: float) -> None:
        await asyncio.sleep(offset)
        fault = Fault(kind, node, time.time())
        fwd = self.forwarders[node]
        if kind == "cut":
            self.net.cut(node, down=True)
        elif kind == "stall":
            fwd.flowing.clear()
        elif kind == "delay":
            fwd.delay_s = self.rng.uniform(0.02, 0.3)
            fault.detail["delay_s"] = round(fwd.delay_s, 3)
        elif kind == "reset":
            fault.detail["sessions"] = fwd.reset()
            duration = 0.0
        elif kind == "split":
            self.net.split(True)
        await asyncio.sleep(duration)
        if kind == "cut":
            self.net.cut(node, down=False)
        elif kind == "stall":
            fwd.flowing.set()
        elif kind == "delay":
            fwd.delay_s = 0.0
        elif kind == "split":
            self.net.split(False)
        fault.end = time.time()
        self.faults.append(fault)

    async def _finished(self, ids: list[str], timeout: float) -> float | None:
        marks = ",".join("?" * len(ids))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = await self.store.fetchone(
                f"SELECT COUNT(*) AS n FROM runs WHERE run_id IN ({marks}) AND status = 'succeeded'", ids
            )
            if row is not None and int(row["n"]) == len(ids):
                return time.monotonic()
            await asyncio.sleep(0.05)
        return None

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        await self.setup()
        setup_s = time.monotonic() - started
        for k in range(self.args.schedules):
            await self.schedule(k)
        # the ticks of the last minute and every run, after the last heal
        await self._finished(self.runs, self.args.finish_timeout)
        history = await self._history()
        figures = check(history, self, self.args.lease)
        figures["setup_s"] = round(setup_s, 1)
        figures["wall_s"] = round(time.monotonic() - started, 1)
        return figures

    async def _history(self) -> dict[str, Any]:
        runs = {
            str(r["run_id"]): str(r["status"])
            for r in await self.store.fetchall("SELECT run_id, status FROM runs")
        }
        fires = await self.store.fetchall(
            "SELECT nominal_at, run_id, action FROM schedule_fires WHERE schedule_id = 'tick'"
        )
        cursor = await self.store.fetchone("SELECT cursor_at FROM schedules WHERE schedule_id = 'tick'")
        acquired = await self.store.fetchall(
            "SELECT at, subject, body FROM events WHERE kind = 'lease.acquired' ORDER BY id"
        )
        effects = []
        if self.effect_log.exists():
            for line in self.effect_log.read_text().splitlines():
                key, _pid, node, agent, epoch, at = line.split()
                effects.append((key, node, agent, int(epoch), float(at)))
        return {
            "runs": runs,
            "fires": [dict(f) for f in fires],
            "last_cursor": float(cursor["cursor_at"]) if cursor else self.first_cursor,
            "acquired": [(float(a["at"]), str(a["subject"]), json.loads(a["body"])) for a in acquired],
            "effects": effects,
            "held": {
                n.node_id: [(float(x["t"]), list(x.get("held", []))) for x in n.lines] for n in self.nodes
            },
        }


# ---------------------------------------------------------------------------------------------------
# the checker


def check(h: dict[str, Any], suite: Suite, lease_s: float) -> dict[str, Any]:
    problems: list[str] = []
    effects = h["effects"]
    # no effect twice
    twice = [k for k, n in Counter(e[0] for e in effects).items() if n > 1]
    problems += [f"effect {k} applied twice" for k in twice]
    # fencing: per unit, one node per epoch, and epochs never interleave in time
    by_unit: dict[str, dict[int, list[tuple[float, str]]]] = defaultdict(lambda: defaultdict(list))
    for _key, node, agent, epoch, at in effects:
        by_unit[agent][epoch].append((at, node))
    for unit, epochs in by_unit.items():
        if -1 in epochs:
            problems.append(f"{unit}: effects by a node holding no lease")
        for epoch, acts in epochs.items():
            nodes = {n for _, n in acts}
            if len(nodes) > 1:
                problems.append(f"{unit}: epoch {epoch} acted on by {sorted(nodes)}")
        ordered = sorted(epochs)
        for older, newer in itertools.pairwise(ordered):
            if max(t for t, _ in epochs[older]) > min(t for t, _ in epochs[newer]):
                problems.append(f"{unit}: an effect under epoch {older} after one under epoch {newer}")
    # ticks: every minute from the first cursor to the last, fired once, with one run that succeeded
    minute = 60.0
    expected = []
    t = (int(suite.first_cursor // minute) + 1) * minute
    while t <= h["last_cursor"]:
        expected.append(t)
        t += minute
    fired = Counter(float(f["nominal_at"]) for f in h["fires"])
    lost = [x for x in expected if fired[x] == 0]
    doubled = [x for x, n in fired.items() if n > 1]
    tick_runs = [str(f["run_id"]) for f in h["fires"] if f["action"] == "fire"]
    problems += [f"tick {x} lost" for x in lost] + [f"tick {x} doubled" for x in doubled]
    # every run finished after the heal
    not_done = sorted(r for r in suite.runs + tick_runs if h["runs"].get(r) != "succeeded")
    problems += [f"run {r} did not succeed ({h['runs'].get(r)})" for r in not_done]
    # a cut-off node stops acting within its lease; its units move
    stop_late, moves, judged = [], [], 0
    for f in suite.faults:
        if f.kind not in ("cut", "stall") or f.end - f.start < lease_s + 0.3:
            continue
        judged += 1
        node = f"n{f.node}"
        timeline = h["held"].get(node, [])
        before = [held for t, held in timeline if t <= f.start]
        had = before[-1] if before else []
        limit = f.start + lease_s
        still = [held for t, held in timeline if t <= limit]
        if had and still and still[-1]:
            stop_late.append(f"{node} still held {still[-1]} {lease_s}s into a {f.kind} at {f.start:.2f}")
        late_acts = [e for e in effects if e[1] == node and limit < e[4] <= f.end]
        problems += [f"{node} acted for {e[2]} at {e[4]:.2f}, cut off since {f.start:.2f}" for e in late_acts]
        for unit in had:
            taken = [
                a for a, u, body in h["acquired"] if u == unit and body.get("node") != node and a > f.start
            ]
            if taken:
                moves.append(min(taken) - f.start)
    problems += stop_late
    moves.sort()
    kinds = Counter(f.kind for f in suite.faults)
    return {
        "schedules": suite.args.schedules,
        "faults": dict(kinds),
        "faults_total": sum(kinds.values()),
        "cuts_longer_than_lease": judged,
        "runs": len(suite.runs) + len(tick_runs),
        "effects": len(effects),
        "ticks_expected": len(expected),
        "ticks_fired": len(tick_runs),
        "violations": len(problems),
        "problems": problems[:30],
        "stop_within_lease": not stop_late,
        "units_moved": len(moves),
        "move_s_median": round(moves[len(moves) // 2], 2) if moves else None,
        "move_s_max": round(moves[-1], 2) if moves else None,
        "heal_to_done_s_median": round(sorted(suite.heal_to_done)[len(suite.heal_to_done) // 2], 2)
        if suite.heal_to_done
        else None,
        "heal_to_done_s_max": round(max(suite.heal_to_done), 2) if suite.heal_to_done else None,
        "lease_s": lease_s,
        "move_over_lease": round(moves[len(moves) // 2] / lease_s, 2) if moves else None,
    }


def missed(figures: dict[str, Any]) -> list[str]:
    out = []
    if figures["violations"] != 0:
        out.append("violations")
    if figures["schedules"] < TARGETS["schedules_min"]:
        out.append("schedules_min")
    if not figures["stop_within_lease"]:
        out.append("stop_within_lease")
    return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="beamish-partitions-"))
    suite = Suite(args, workdir)
    try:
        figures = await suite.run()
    finally:
        left = await suite.teardown()
    figures["cleanup_left"] = left
    figures["nodes_killed_at_end"] = suite.killed
    keep = args.keep or bool(figures["violations"])  # the logs of a failing run stay for a person
    figures["workdir"] = str(workdir) if keep else None
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = int(os.environ.get("BEAMISH_PARTITION_SCHEDULES", "50"))
    parser.add_argument("--schedules", type=int, default=default, help="randomized fault schedules")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--lease", type=float, default=1.0, help="the nodes' lease in seconds")
    parser.add_argument("--window", type=float, default=2.0, help="seconds a schedule's faults span")
    parser.add_argument("--finish-timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the node logs and effect log")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    why = netns_unavailable()
    if why is not None:
        print(f"partitions: cannot run: {why}")
        print(json.dumps({"skipped": why}))
        return 2
    figures = asyncio.run(amain(args))
    figures["seed"] = args.seed
    figures["targets"] = TARGETS
    figures["targets_missed"] = missed(figures)
    f = figures
    print(
        f"partitions: {f['schedules']} schedules (seed {f['seed']}), {f['faults_total']} faults "
        f"{f['faults']}, {f['runs']} runs, {f['effects']} effects, "
        f"{f['ticks_fired']}/{f['ticks_expected']} ticks"
    )
    print(
        f"  violations {f['violations']} (target 0); a cut-off node stopped within its lease: "
        f"{f['stop_within_lease']}"
    )
    print(
        f"  units of a node cut off longer than the lease ({f['cuts_longer_than_lease']} cuts, "
        f"{f['units_moved']} units) held elsewhere after median {f['move_s_median']} s, "
        f"max {f['move_s_max']} s; median / lease {f['move_over_lease']}x (lease {f['lease_s']} s)"
    )
    print(f"  heal to every run done: median {f['heal_to_done_s_median']} s, max {f['heal_to_done_s_max']} s")
    print(f"  wall {f['wall_s']} s (setup {f['setup_s']} s); cleanup left: {f['cleanup_left'] or 'nothing'}")
    for p in f["problems"]:
        print(f"  problem: {p}")
    print(json.dumps(figures, sort_keys=True))
    return 1 if figures["targets_missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
