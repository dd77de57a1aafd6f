"""The wait survives the node: SIGKILL the node while its run awaits approval, approve from another
process, and a new node finishes the run with the effect made exactly once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from beamish.agent._gates import decide, get_gate
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_tools as ft
from ._approval_node import spec
from ._scripts import call, calls_made, write_script

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]


async def test_a_run_awaiting_approval_survives_a_sigkilled_node_and_posts_once(
    pg_url: str, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path, "post", [{"tool_calls": [call("post", text="launch day")]}, {"text": "done"}]
    )
    run_id = f"r-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_approval_node.py")), pg_url, run_id, str(script)],
        stdout=subprocess.PIPE,
        env=env,
    )
    store = await open_store(pg_url)
    try:
        async with asyncio.timeout(30):
            async for _, event in store.follow(poll_s=0.05, kinds=("approval.requested",)):
                if event.subject == run_id:
                    gate_id = str(event.data["gate_id"])
                    break
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert (await store.get_run(run_id)).status == "awaiting_approval"
        assert ft.effects(run_id) == []

        await decide(store, gate_id, "approve", by="alice")  # from this process: another node
        async with Node(store=pg_url) as node:
            await node.start_supervisor(SupervisorSpec([spec(str(script)).child_spec()]))
            result = await node.result(run_id, timeout=30)
        gate = await get_gate(store, gate_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await store.close()
    assert result.status == "succeeded" and result.output == "done"
    assert len(ft.effects(run_id)) == 1, "the approved effect happens exactly once"
    assert (gate.status, gate.decided_by) == ("approved", "alice")
    assert len(calls_made(script)) == 2, "the first model call is replayed, not paid again"
    assert result.replayed_calls == 1
