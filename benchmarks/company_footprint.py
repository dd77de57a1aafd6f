"""Memory of the whole company while the demo runs: node + 8 agent processes + memory server + scheduler.

Runs ``beamish demo`` in a subprocess and samples, once a second, the PSS of its whole process tree
(the node, which also hosts the memory server and the scheduler, the process template and every
agent process), from ``/proc/<pid>/smaps_rollup``. PSS shares pages fairly between processes, so
the sum is what the company really costs the machine. Beside it, in the same run, the naive peer:
nine bare Python interpreters (a node and eight agents, each started fresh instead of forked from a
warm template), idle. Target: ≤ 256 MB for the company (the seed's figure).

    .venv/bin/python benchmarks/company_footprint.py [--duration 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MB = 256.0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(root: int) -> list[int]:
    tree = children_of()
    out, stack = [root], [root]
    while stack:
        for child in tree.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def measure_company(duration: float, warmup: float) -> dict[str, float]:
    beamish = Path(sys.executable).parent / "beamish"
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.Popen(
            [str(beamish), "demo", "--duration", str(duration), "--json", "--seed", "1"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        while proc.poll() is None:
            pids = descendants(proc.pid)
            total = sum(pss_kb(p) for p in pids)
            if time.monotonic() - started >= warmup and len(pids) >= 10:
                samples.append((total / 1024, len(pids)))
            time.sleep(1.0)
        out, _ = proc.communicate()
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    if not samples:
        raise SystemExit("the demo never ran with all its processes; nothing measured")
    mb = [s[0] for s in samples]
    return {
        "median_mb": statistics.median(mb),
        "max_mb": max(mb),
        "processes": statistics.median(s[1] for s in samples),
        "samples": len(samples),
        "runs_completed": summary.get("runs_completed", 0),
    }


def measure_peer(n: int = 9) -> float:
    """PSS of ``n`` idle bare interpreters that imported asyncio and json (the least an agent needs)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "import asyncio, json, sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        for _ in range(n)
    ]
    try:
        time.sleep(1.5)
        return sum(pss_kb(p.pid) for p in procs) / 1024
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of demo to sample")
    args = parser.parse_args()
    peer = measure_peer()
    company = measure_company(args.duration, warmup=3.0)
    ratio = company["median_mb"] / peer
    print(
        f"company PSS while the demo runs: median {company['median_mb']:.1f} MB, "
        f"max {company['max_mb']:.1f} MB "
        f"over {company['samples']} samples, {company['processes']:.0f} processes "
        f"({company['runs_completed']} runs completed)"
    )
    print(f"peer: 9 bare idle Python interpreters: {peer:.1f} MB PSS   ratio company/peer {ratio:.2f}x")
    print(
        f"target: ≤ {TARGET_MB:.0f} MB (the seed's figure): "
        f"{'met' if company['max_mb'] <= TARGET_MB else 'MISSED'}"
    )
    print(
        json.dumps(
            {
                "benchmark": "company_footprint",
                "company_pss_median_mb": round(company["median_mb"], 1),
                "company_pss_max_mb": round(company["max_mb"], 1),
                "processes": company["processes"],
                "peer_9_bare_interpreters_pss_mb": round(peer, 1),
                "ratio_vs_peer": round(ratio, 2),
                "target_mb": TARGET_MB,
                "target_met": company["max_mb"] <= TARGET_MB,
            }
        )
    )


if __name__ == "__main__":
    main()
