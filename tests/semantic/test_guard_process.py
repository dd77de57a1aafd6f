"""A hang in a process-isolated agent, on real (short) timeouts: the watchdog ends the agent's
process, its supervisor starts a new one, and the run resumes from the journal."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from beamish import AgentSpec, OverBudget
from beamish.agent._budget import Budget
from beamish.agent._policy import Policy
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
        await node.submit("reporter", "report", run_id=run_id)
        hung = ft.marker(run_id, "hung")
        await wait_for(hung.exists, timeout=30, what="the tool to go silent")
        first_pid = int(hung.read_text())
        assert first_pid != os.getpid()
        result = await node.result(run_id, timeout=30)
    assert result.status == "succeeded"
    assert result.output == "All done."
    calls = [json.loads(line) for line in (tmp_path / "hang.calls.jsonl").read_text().splitlines()]
    assert len(calls) == 3  # two calls before the hang, replayed after it; only the third made anew
    assert calls[-1]["pid"] != first_pid  # by a new process
    async with await open_store(url) as store:
        rows = await store.fetchall("SELECT body FROM events WHERE kind = 'watchdog.hung'")
    assert len(rows) == 1
    assert json.loads(rows[0]["body"])["data"]["silent_for_s"] >= 1.0


async def test_a_non_default_policy_reaches_a_process_agent_and_decides_its_runs(tmp_path: Path) -> None:
    usage = {"input_tokens": 50, "output_tokens": 4000}
    turns = [
        {
            "text": "Fetching.",
            "tool_calls": [{"name": "fetch", "arguments": {"url": f"u{i}"}}],
            "usage": usage,
        }
        for i in range(3)
    ]
    path = tmp_path / "spend.json"
    log = tmp_path / "spend.calls.jsonl"
    path.write_text(json.dumps({"turns": [*turns, {"text": "done", "usage": usage}], "call_log": str(log)}))
    price = Price(input_per_mtok=1.0, output_per_mtok=10.0)  # $0.04005 a call, worst case ~$0.042
    spec = AgentSpec(
        name="spender",
        instructions="You spend.",
        model=f"scripted:{path}",
        tools=[ft.fetch],
        isolation="process",
        budget=Budget(per_run_usd=0.10, prices={"scripted:*": price}),
        policy=Policy(on_budget="stop"),  # the default would pause the run
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        first = await node.result(await node.submit("spender", "go"), timeout=30)
        assert first.status == "failed"  # stopped, not paused: the policy crossed into the process
        assert isinstance(first.reason, OverBudget)
        assert first.reason.limit == "run.per_run_usd"
        assert len(log.read_text().splitlines()) == 2  # the third call's worst case did not fit
        # a stopped run leaves the agent serving: its next run gets a fresh per-run cap
        second = await node.result(await node.submit("spender", "again"), timeout=30)
        assert second.status == "failed"
        assert len(log.read_text().splitlines()) == 4
    async with await open_store(url) as store:
        rows = await store.fetchall("SELECT body FROM events WHERE kind = 'budget.exceeded'")
    assert [json.loads(r["body"])["data"]["scope"] for r in rows] == ["run", "run"]
