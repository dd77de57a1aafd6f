"""A process-isolated agent SIGKILLed after a compaction resumes without paying for it again: the
compaction's steps come back from the journal, and the run ends as the uninterrupted one does."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, Budget, Price, Watchdog
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft
from ._context_scripts import write_long_script
from ._scripts import calls_made

pytestmark = pytest.mark.timeout(120)

WINDOW = 3000
TURNS = 80
HOLD_AT = 50  # past the first compaction (turn ~36 on this window)


def _agent(script: Path) -> AgentSpec:
    return AgentSpec(
        name="researcher",
        instructions="You research.",
        model=f"scripted:{script}",
        tools=[ft.lookup],
        isolation="process",
        watchdog=Watchdog(max_steps=None),
        max_tokens=200,
        budget=Budget(prices={"scripted:*": Price(3.0, 15.0)}),  # priced, no cap to reserve against
    )


async def _compact_seqs(store_url: str, run_id: str) -> tuple[list[int], float, list[Any]]:
    async with await open_store(store_url) as store:
        steps = await store.steps(run_id)
        run = await store.get_run(run_id)
        replayed = [e for _, e in await store.events(0, kinds=["step.replayed"], subject=run_id)]
    return [s.seq for s in steps if s.kind == "compact"], run.spend_usd, replayed


@pytest.mark.parametrize("why", ["threshold", "provider_refused"])
async def test_a_sigkill_after_a_compaction_resumes_without_paying_for_it_again(
    store_url: str, tmp_path: Path, why: str
) -> None:
    # "provider_refused": the model's count falls short, so the first compaction follows a refusal
    # the journal never saw; the resumed run must still fold at the same step (it follows its journal)
    scale = 0.5 if why == "provider_refused" else 1.0
    clean_script = write_long_script(
        tmp_path, "clean", TURNS, window=WINDOW, hold_at=HOLD_AT, counter_scale=scale
    )
    clean_url = f"sqlite:///{tmp_path}/clean.db"
    async with Node(store=clean_url) as node:
        await node.start_supervisor(SupervisorSpec([_agent(clean_script).child_spec()]))
        await node.submit("researcher", "Research every topic", run_id="clean")
        clean = await node.result("clean", timeout=60)
    assert clean.status == "succeeded", clean.reason
    clean_compactions = [c for c in calls_made(clean_script) if c.get("compact")]
    clean_seqs, clean_spend, _ = await _compact_seqs(clean_url, "clean")
    assert clean_compactions and len(clean_seqs) == len(clean_compactions)

    script = write_long_script(tmp_path, "killed", TURNS, window=WINDOW, hold_at=HOLD_AT, counter_scale=scale)
    run_id = f"ctx-killed-{uuid.uuid4().hex}"
    ft.hold_file(run_id).write_text("lookup:hold-here")
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([_agent(script).child_spec()], intensity=3, period=30))
        await node.submit("researcher", "Research every topic", run_id=run_id)
        holding = ft.holding_file(run_id)
        await wait_for(holding.exists, timeout=60, what="the agent to reach the held lookup")
        pid = int(holding.read_text())
        assert pid != os.getpid()
        before_kill = calls_made(script)
        assert [c for c in before_kill if c.get("compact")], "the held turn comes after a compaction"
        os.kill(pid, signal.SIGKILL)
        result = await node.result(run_id, timeout=60)

    assert result.status == "succeeded", result.reason
    assert result.output == clean.output
    calls = calls_made(script)
    compactions = [c for c in calls if c.get("compact")]
    assert len(compactions) == len(clean_compactions), "no compaction was paid for twice"
    paid_before = [c for c in before_kill if c.get("compact")]
    assert compactions[: len(paid_before)] == paid_before
    assert pid not in {c["pid"] for c in compactions[len(paid_before) :]}
    turns = [c["turn"] for c in calls if "turn" in c]
    assert turns == list(range(TURNS + 1)), "no model turn was paid for twice either"

    refusals = [c for c in calls if c.get("over_window")]
    assert len(refusals) == (1 if why == "provider_refused" else 0), "the learned scale was replayed too"
    seqs, spend, replayed = await _compact_seqs(store_url, run_id)
    assert seqs == clean_seqs, "the resumed run compacted at the same steps"
    assert spend == pytest.approx(clean_spend), "the resumed run cost what the uninterrupted one did"
    assert replayed, "the restarted process replayed the journal"
    first = replayed[0].data
    assert first["from_seq"] == 0 and all(
        first["from_seq"] <= s <= first["to_seq"] for s in seqs[: len(paid_before)]
    )
    async with await open_store(store_url) as store:
        assert not await store.events(0, kinds=["step.divergence"], subject=run_id)
        events = [e.data for _, e in await store.events(0, kinds=["run.compacted"], subject=run_id)]
    assert events[0]["why"] == why
