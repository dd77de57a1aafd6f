"""Memory server latency: beamish vs the reference (npm @modelcontextprotocol/server-memory).

Both servers run as stdio processes driven by the official MCP Python client, on copies of the
same generated file (1k, 10k, 50k entities, half as many relations; the copies are fsynced first
so neither server pays for flushing the generator's writes). Measured per call: create_entities
(one new entity; beamish returns only once the write is durable: an append and its fdatasync),
search_nodes (a query matching one entity), open_nodes (one name), and the MCP round trip itself
(ping). Beside them: beamish's create in-process (``KnowledgeGraph``, no MCP), and each server's
create minus its own ping (the server's share of the call). Also: 50 concurrent creates in one
session, and how many of them each server kept. Prints medians and p99 with ratios, then one JSON
line.

    .venv/bin/python benchmarks/memory_server.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from beamish.memory import KnowledgeGraph

REFERENCE = "@modelcontextprotocol/server-memory@2026.8.31"
CACHE = Path(os.environ.get("BEAMISH_TEST_CACHE", Path.home() / ".cache" / "beamish-tests")) / "server-memory"
TARGET_CREATE_RATIO_AT_10K = 50.0


def reference_entry() -> Path | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    entry = CACHE / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
    if not entry.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", REFERENCE],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return entry


def generate(path: Path, n: int) -> None:
    lines = [
        json.dumps(
            {
                "type": "entity",
                "name": f"entity-{i}",
                "entityType": ("person", "company", "project")[i % 3],
                "observations": [f"fact {i} about the business", f"owner note #{i}"],
            },
            separators=(",", ":"),
        )
        for i in range(n)
    ]
    lines += [
        json.dumps(
            {
                "type": "relation",
                "from": f"entity-{i}",
                "to": f"entity-{(i * 7 + 1) % n}",
                "relationType": "works_with",
            },
            separators=(",", ":"),
        )
        for i in range(0, n, 2)
    ]
    path.write_text("\n".join(lines))


@asynccontextmanager
async def session(command: list[str], memory: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=command[0], args=command[1:], env={"MEMORY_FILE_PATH": str(memory)}
    )
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as streams, ClientSession(*streams) as s:
            await s.initialize()
            yield s


async def timed(reps: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(reps):
        start = time.perf_counter()
        result = await call(i)
        out.append(time.perf_counter() - start)
        assert not result.is_error, result
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000, "n": len(ordered)}


async def measure(
    command: list[str], base: Path, workdir: Path, n: int, reps: int, tag: str
) -> dict[str, Any]:
    memory = workdir / f"{tag}-{n}.jsonl"
    copy_synced(base, memory)
    rng = random.Random(n)
    async with session(command, memory) as s:
        await s.call_tool("open_nodes", {"names": ["entity-0"]})  # warm: first load of the file
        pings = []
        for _ in range(reps):
            start = time.perf_counter()
            await s.send_ping()
            pings.append(time.perf_counter() - start)
        create = await timed(
            reps,
            lambda i: s.call_tool(
                "create_entities",
                {"entities": [{"name": f"new-{tag}-{i}", "entityType": "person", "observations": ["bench"]}]},
            ),
        )
        picks = [rng.randrange(n) for _ in range(reps)]
        search = await timed(reps, lambda i: s.call_tool("search_nodes", {"query": f"fact {picks[i]} about"}))
        opened = await timed(reps, lambda i: s.call_tool("open_nodes", {"names": [f"entity-{picks[i]}"]}))
    names = {json.loads(line)["name"] for line in memory.read_text().splitlines() if '"entity"' in line}
    durable = all(f"new-{tag}-{i}" in names for i in range(reps))
    return {
        "create": summary(create),
        "search": summary(search),
        "open": summary(opened),
        "ping": summary(pings),
        "durable": durable,
    }


def copy_synced(base: Path, target: Path) -> None:
    shutil.copyfile(base, target)
    with open(target, "rb+") as f:
        os.fsync(f.fileno())
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def in_process_creates(base: Path, workdir: Path, n: int, reps: int) -> dict[str, float]:
    """beamish's durable create without any transport: the store's own cost."""
    memory = workdir / f"inproc-{n}.jsonl"
    copy_synced(base, memory)
    samples = []
    async with KnowledgeGraph(memory, report_repairs=False) as kg:
        await kg.open_nodes(["entity-0"])
        for i in range(reps):
            start = time.perf_counter()
            await kg.create_entities(
                [{"name": f"inproc-{i}", "entityType": "person", "observations": ["bench"]}]
            )
            samples.append(time.perf_counter() - start)
    return summary(samples)


async def concurrent_creates(command: list[str], base: Path, workdir: Path, tag: str) -> dict[str, Any]:
    """50 creates in flight at once in one session, on the 10k file: wall time and how many stayed."""
    memory = workdir / f"{tag}-concurrent.jsonl"
    copy_synced(base, memory)
    async with session(command, memory) as s:
        await s.call_tool("open_nodes", {"names": ["entity-0"]})
        start = time.perf_counter()
        await asyncio.gather(
            *(
                s.call_tool(
                    "create_entities",
                    {"entities": [{"name": f"c{i}", "entityType": "t", "observations": []}]},
                )
                for i in range(50)
            )
        )
        wall = time.perf_counter() - start
    names = {
        json.loads(line)["name"] for line in memory.read_text().splitlines() if '"type":"entity"' in line
    }
    return {"wall_ms": wall * 1000, "kept": sum(1 for i in range(50) if f"c{i}" in names)}


async def main(quick: bool) -> dict[str, Any]:
    entry = reference_entry()
    ours = [sys.executable, "-m", "beamish.memory"]
    theirs = ["node", str(entry)] if entry else None
    sizes = [1000, 10000] if quick else [1000, 10000, 50000]
    ref_reps = {1000: 20, 10000: 10, 50000: 4}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="beamish-memory-bench-") as tmp:
        workdir = Path(tmp)
        for n in sizes:
            base = workdir / f"base-{n}.jsonl"
            generate(base, n)
            row: dict[str, Any] = {"beamish": await measure(ours, base, workdir, n, 100, "b")}
            row["beamish"]["create_in_process"] = await in_process_creates(base, workdir, n, 100)
            for side in ("beamish", "reference") if theirs else ("beamish",):
                if side == "reference":
                    row["reference"] = await measure(theirs, base, workdir, n, ref_reps[n], "r")  # type: ignore[arg-type]
                figures = row[side]
                figures["create_above_ping_ms"] = (
                    figures["create"]["median_ms"] - figures["ping"]["median_ms"]
                )
            if theirs:
                row["ratio"] = {
                    op: row["reference"][op]["median_ms"] / row["beamish"][op]["median_ms"]
                    for op in ("create", "search", "open")
                }
                row["ratio"]["create_above_ping"] = row["reference"]["create_above_ping_ms"] / max(
                    row["beamish"]["create_above_ping_ms"], 1e-6
                )
            results[str(n)] = row
            print(f"\n{n:>6} entities      beamish median / p99        reference median / p99     ratio")
            for op in ("create", "search", "open"):
                b = row["beamish"][op]
                line = f"  {op:<8} {b['median_ms']:>10.2f} ms / {b['p99_ms']:>8.2f} ms"
                if theirs:
                    r = row["reference"][op]
                    line += (
                        f"   {r['median_ms']:>10.2f} ms / {r['p99_ms']:>8.2f} ms   {row['ratio'][op]:>7.1f}x"
                    )
                print(line, flush=True)
            floor = f"  MCP round trip (ping): beamish {row['beamish']['ping']['median_ms']:.2f} ms"
            if theirs:
                floor += f", reference {row['reference']['ping']['median_ms']:.2f} ms"
            print(floor)
            inproc = row["beamish"]["create_in_process"]
            above = f"  create minus ping: beamish {row['beamish']['create_above_ping_ms']:.2f} ms"
            if theirs:
                above += (
                    f", reference {row['reference']['create_above_ping_ms']:.2f} ms"
                    f"   {row['ratio']['create_above_ping']:.1f}x"
                )
            print(above)
            print(
                f"  beamish create in-process (no MCP): {inproc['median_ms']:.2f} ms"
                f" / p99 {inproc['p99_ms']:.2f} ms"
            )
            print(f"  creates durable on return (append + fdatasync): {row['beamish']['durable']}")
        base = workdir / "base-10000.jsonl"
        burst = {"beamish": await concurrent_creates(ours, base, workdir, "b")}
        if theirs:
            burst["reference"] = await concurrent_creates(theirs, base, workdir, "r")
        print("\n50 concurrent creates in one session at 10k entities:")
        for name, figures in burst.items():
            print(f"  {name:<9} {figures['wall_ms']:>9.1f} ms wall, kept {figures['kept']}/50")
    ratio_10k = results.get("10000", {}).get("ratio", {}).get("create")
    return {
        "benchmark": "memory_server",
        "results": results,
        "concurrent_50_at_10k": burst,
        "create_ratio_at_10k": ratio_10k,
        "target_create_ratio_at_10k": TARGET_CREATE_RATIO_AT_10K,
        "target_met": ratio_10k is not None and ratio_10k >= TARGET_CREATE_RATIO_AT_10K,
        "reference": REFERENCE if theirs else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    figures = asyncio.run(main(parser.parse_args().quick))
    print(json.dumps(figures, separators=(",", ":")))
