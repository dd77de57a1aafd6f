"""What waiting for a person costs: N runs awaiting approval on one node, beside the same node idle.

One node, one process-isolated agent whose ``post`` tool needs approval. N runs are submitted; each
stops at its gate (``awaiting_approval``). Measured then: the PSS of the node's whole process tree
(from ``/proc/<pid>/smaps_rollup``), its process and thread counts, and the gate rows. Then every
gate is approved through the public API, the runs finish, and the same figures are taken of the
same node idle (N finished runs, nothing waiting). Waiting holds no process, slot or transaction,
so the ratios should be ~1.0. Targets: memory ratio ≤ 1.10, no extra process.

    .venv/bin/python benchmarks/approvals.py [--runs 1000] [--store sqlite:///…|postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _approval_tools

from beamish import AgentSpec
from beamish.agent._gates import decide, pending_gates
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

MEMORY_RATIO_TARGET = 1.10


def _tree(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def _field(pid: int, path: str, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def footprint() -> dict[str, float]:
    pids = _tree(os.getpid())
    return {
        "pss_mb": sum(_field(p, "smaps_rollup", "Pss:") for p in pids) / 1024,
        "processes": len(pids),
        "threads": sum(_field(p, "status", "Threads:") for p in pids),
    }


async def _count(store: object, sql: str) -> int:
    row = await store.fetchone(sql)  # type: ignore[attr-defined]
    return int(row["n"]) if row else 0


async def measure(runs: int, url: str, script: Path) -> dict[str, object]:
    spec = AgentSpec(
        "marketing", "You post.", f"scripted:{script}", tools=[_approval_tools.post], isolation="process"
    )
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        store = await open_store(url)
        try:
            started = time.perf_counter()
            for i in range(runs):
                await node.submit("marketing", f"post {i}", run_id=f"bench-{i}")
            awaiting_sql = "SELECT COUNT(*) AS n FROM runs WHERE status = 'awaiting_approval'"
            while await _count(store, awaiting_sql) < runs:
                await asyncio.sleep(0.2)
            to_gates = time.perf_counter() - started
            await asyncio.sleep(2)  # let allocations settle before sampling
            waiting = {**footprint(), "gates": len(await pending_gates(store))}
            for gate in await pending_gates(store):
                await decide(store, gate.gate_id, "approve", by="bench")
            done_sql = "SELECT COUNT(*) AS n FROM runs WHERE status = 'succeeded'"
            while await _count(store, done_sql) < runs:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            idle = footprint()
        finally:
            await store.close()
    return {"waiting": waiting, "idle": idle, "seconds_to_all_gates": round(to_gates, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--store", default=None, help="a store URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.json"
        turns = [{"tool_calls": [{"name": "post", "arguments": {"text": "launch"}}]}, {"text": "done"}]
        script.write_text(json.dumps({"scripts": [{"turns": turns}]}))
        url = args.store or f"sqlite:///{tmp}/journal.db"
        result = asyncio.run(measure(args.runs, url, script))
    waiting, idle = result["waiting"], result["idle"]
    assert isinstance(waiting, dict) and isinstance(idle, dict)
    ratio = waiting["pss_mb"] / idle["pss_mb"]
    print(
        f"{args.runs} runs awaiting approval: {waiting['pss_mb']:.1f} MB PSS, "
        f"{waiting['processes']} processes, {waiting['threads']} threads, {waiting['gates']} gate rows"
    )
    print(
        f"same node idle (runs finished):    {idle['pss_mb']:.1f} MB PSS, "
        f"{idle['processes']} processes, {idle['threads']} threads"
    )
    print(f"ratio waiting/idle: memory {ratio:.3f}, processes {waiting['processes'] / idle['processes']:.2f}")
    out = {
        "runs": args.runs,
        "waiting_pss_mb": round(waiting["pss_mb"], 1),
        "idle_pss_mb": round(idle["pss_mb"], 1),
        "memory_ratio": round(ratio, 3),
        "memory_ratio_target": MEMORY_RATIO_TARGET,
        "waiting_processes": waiting["processes"],
        "idle_processes": idle["processes"],
        "extra_processes_target": 0,
        "seconds_to_all_gates": result["seconds_to_all_gates"],
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
