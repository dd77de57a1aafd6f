"""A hang in a process-isolated agent, on real (short) timeouts: the watchdog ends the agent's
process, its supervisor starts a new one, and the run resumes from the journal."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from beamish import AgentSpec
from beamish.agent import _control
from beamish.agent._budget import Budget
from beamish.agent._pricing import Price
from beamish.agent._watchdog import Watchdog
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft

pytestmark = pytest.mark.timeout(60)


def _script(tmp: Path) -> Path:
    turns = [
        {"text": "Looking.", "tool_calls": [{"name": "fetch", "arguments": {"url": "a"}}]},
        {"text": "Compiling.", "tool_calls": [{"name": "compile_report", "arguments": {}}]},
        {"text": "All done."},
    ]
    path = tmp / "hang.json"
    path.write_text(json.dumps({"turns": turns, "call_log": str(tmp / "hang.calls.jsonl")}))
    return path


async def test_a_hung_process_agent_is_restarted_and_resumes_without_paying_twice(tmp_path: Path) -> None:
    path = _script(tmp_path)
    url = f"sqlite:///{tmp_path}/j.db"
    spec = AgentSpec(
        name="reporter",
        instructions="You write reports.",
        model=f"scripted:{path}",
        tools=[ft.fetch, ft.compile_report],
        isolation="process",
        budget=Budget(prices={"scripted:*": Price.free()}),
        watchdog=Watchdog(hang_after_s=1.0),
    )
    run_id = f"hang-{uuid.uuid4().hex}"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        await _control.submit(node, "reporter", "report", run_id=run_id)
        hung = ft.marker(run_id, "hung")
        await wait_for(hung.exists, timeout=30, what="the tool to go silent")
        first_pid = int(hung.read_text())
        assert first_pid != os.getpid()
        result = await _control.result(node, run_id, timeout=30)
    assert result.status == "succeeded"
    assert result.output == "All done."
    calls = [json.loads(line) for line in (tmp_path / "hang.calls.jsonl").read_text().splitlines()]
    assert len(calls) == 3  # two calls before the hang, replayed after it; only the third made anew
    assert calls[-1]["pid"] != first_pid  # by a new process
    async with await open_store(url) as store:
        rows = await store.fetchall("SELECT body FROM events WHERE kind = 'watchdog.hung'")
    assert len(rows) == 1
    assert json.loads(rows[0]["body"])["data"]["silent_for_s"] >= 1.0
