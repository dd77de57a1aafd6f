"""Starting the memory server does not stall the node's loop (its first import runs in a thread)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# A fresh interpreter: in this one the MCP server's modules may already be imported by other tests.
SCRIPT = """
import asyncio, sys
from beamish import Node
from beamish._net import free_port
from beamish.company._memory_service import MemoryService

async def main() -> None:
    stalls = []
    async with Node(loop_watch_s=0.2) as node:
        node.add_event_sink(lambda e: stalls.append(e) if e.kind == "node.loop_blocked" else None)
        ref = await node.spawn(MemoryService, sys.argv[1], port=free_port())
        await asyncio.sleep(0)  # let a stall report queued by the watchdog thread arrive
        await ref.stop()
    print(len(stalls), [e.data["actor"] for e in stalls])

asyncio.run(main())
"""


@pytest.mark.timeout(30)
def test_starting_the_memory_server_does_not_block_the_nodes_loop(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "memory.jsonl")],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "0", done.stdout + done.stderr
