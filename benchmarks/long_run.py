"""Long run: the solo company serving steady work for ``--minutes N``; its memory and descriptors over time.

The node is the chaos soak's (``benchmarks/soak.py``) in its calm mode: the demo's config, scripted
model without faults, SQLite, schedules on an accelerated clock (a simulated hour every 6 s), so
runs, model calls, tool effects, memory writes and journal appends never stop. Every ``--every``
seconds the harness samples, from ``/proc``, the node process's RSS and open file descriptors, and
the same for the node's whole process tree (agent processes, the process template). Beside it, in
the same run, the peer: an idle Python interpreter that has imported beamish, sampled the same way
(the interpreter's own drift).

After the warm-up (``--warmup``, a fraction of the run), the figures are the growth from the first
tenth of the remaining samples to the last tenth (medians): RSS must grow ≤ 5 %, descriptors must
stay flat (the last tenth's median no higher than the first's + 2). A 24-hour mode exists for people
who run it: ``--hours 24``.

    .venv/bin/python benchmarks/long_run.py --minutes 30 [--every 10]

Prints a table over time and ends with one JSON line of figures and targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak  # the node and its setup are the soak's

TARGET_RSS_GROWTH_PCT = 5.0
TARGET_FD_GROWTH = 2


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return 0


def sample(node: int, peer: int, at: float) -> dict[str, Any]:
    tree = sorted(soak._descendants(node) | {node})
    return {
        "t": round(at, 1),
        "node_rss_kb": rss_kb(node),
        "node_fds": fds(node),
        "tree_rss_kb": sum(rss_kb(p) for p in tree),
        "tree_fds": sum(fds(p) for p in tree),
        "processes": len(tree),
        "peer_rss_kb": rss_kb(peer),
        "peer_fds": fds(peer),
    }


def growth(samples: list[dict[str, Any]], key: str, warmup: float) -> tuple[float, float]:
    """(median of the first tenth after the warm-up, median of the last tenth)."""
    after = [s[key] for s in samples[int(len(samples) * warmup) :]]
    tenth = max(1, len(after) // 10)
    return statistics.median(after[:tenth]), statistics.median(after[-tenth:])


def pct(first: float, last: float) -> float:
    return round((last / first - 1.0) * 100.0, 2) if first else 0.0


def runs_by_status(workdir: Path) -> dict[str, int]:
    db = next(workdir.rglob("*.db"), None)
    if db is None:
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    finally:
        conn.close()


def figures_of(samples: list[dict[str, Any]], warmup: float, minutes: float, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"minutes": minutes, "samples": len(samples), "warmup_fraction": warmup}
    for key in ("node_rss_kb", "tree_rss_kb", "peer_rss_kb"):
        first, last = growth(samples, key, warmup)
        out[f"{key}_after_warmup"], out[f"{key}_end"] = first, last
        out[f"{key.removesuffix('_kb')}_growth_pct"] = pct(first, last)
    for key in ("node_fds", "tree_fds", "peer_fds"):
        first, last = growth(samples, key, warmup)
        out[f"{key}_after_warmup"], out[f"{key}_end"] = first, last
        after = [s[key] for s in samples[int(len(samples) * warmup) :]]
        out[f"{key}_range_after_warmup"] = [min(after), max(after)]
    out["runs_by_status"] = runs_by_status(workdir)
    return out


def verdict(f: dict[str, Any]) -> list[str]:
    missed = []
    if f["node_rss_growth_pct"] > TARGET_RSS_GROWTH_PCT:
        missed.append(f"node RSS grew {f['node_rss_growth_pct']} % after the warm-up")
    if f["node_fds_end"] > f["node_fds_after_warmup"] + TARGET_FD_GROWTH:
        missed.append(f"node descriptors {f['node_fds_after_warmup']} -> {f['node_fds_end']}")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--hours", type=float, default=None, help="the long mode (24); overrides --minutes")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run left out as warm-up")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    minutes = args.hours * 60.0 if args.hours is not None else args.minutes
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="beamish-long-"))
    workdir.mkdir(parents=True, exist_ok=True)
    opts = argparse.Namespace(seed=None, agent_kill_every=3.0, quiet=True, minutes=minutes)
    harness = soak.Harness(opts, workdir)
    harness.setup()
    soak._write_scripts(harness.example, harness.originals, random.Random(0), 0.0, 0)  # no faults
    peer = subprocess.Popen(
        [sys.executable, "-c", "import beamish, time\nwhile True: time.sleep(1)"],
        start_new_session=True,
    )
    samples: list[dict[str, Any]] = []
    try:
        harness.start_node(calm=True)
        assert harness.node is not None
        started = time.monotonic()
        next_at = started
        while (now := time.monotonic()) - started < minutes * 60.0:
            if now >= next_at:
                samples.append(sample(harness.node.pid, peer.pid, now - started))
                s = samples[-1]
                print(
                    f"{s['t']:8.0f}s  node {s['node_rss_kb'] / 1024:7.1f} MB {s['node_fds']:4} fds  "
                    f"tree {s['tree_rss_kb'] / 1024:7.1f} MB {s['tree_fds']:4} fds {s['processes']:3} procs  "
                    f"peer {s['peer_rss_kb'] / 1024:6.1f} MB",
                    flush=True,
                )
                next_at += args.every
            time.sleep(min(1.0, max(0.0, next_at - time.monotonic())))
        harness.stop_node()
    finally:
        peer.send_signal(signal.SIGTERM)
        peer.wait()
        if harness.node is not None and harness.node.poll() is None:
            harness.node.kill()
            harness.node.wait()
        harness.log.close()
    f = figures_of(samples, args.warmup, minutes, workdir)
    missed = verdict(f)
    f["targets"] = {"node_rss_growth_pct_max": TARGET_RSS_GROWTH_PCT, "node_fds_growth_max": TARGET_FD_GROWTH}
    f["targets_missed"] = missed
    print(
        f"long run: {minutes:g} min, {len(samples)} samples, runs {f['runs_by_status']}\n"
        f"  node RSS after warm-up {f['node_rss_kb_after_warmup'] / 1024:.1f} MB -> "
        f"{f['node_rss_kb_end'] / 1024:.1f} MB: {f['node_rss_growth_pct']:+.2f} % (target <= "
        f"{TARGET_RSS_GROWTH_PCT} %); peer (idle interpreter): {f['peer_rss_growth_pct']:+.2f} %\n"
        f"  node descriptors {f['node_fds_after_warmup']} -> {f['node_fds_end']} "
        f"(range {f['node_fds_range_after_warmup']}, target: flat); whole tree RSS "
        f"{f['tree_rss_growth_pct']:+.2f} %, descriptors {f['tree_fds_after_warmup']} -> {f['tree_fds_end']}"
    )
    for m in missed:
        print(f"  missed: {m}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    f["samples_over_time"] = samples
    print(json.dumps(f, sort_keys=True))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
