"""Consults: an answer flows back, a deadline fails the step (not the agent), cycles are refused at
once, and an asker killed mid-consult replays the consult instead of asking twice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import uuid
from pathlib import Path
from typing import Any, Literal

import pytest

from beamish import AgentSpec
from beamish.agent._consult import consult_run_id
from beamish.agent._runs import runs_of
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft
from ._scripts import call, calls_made, write_script

pytestmark = pytest.mark.timeout(60)


def _spec(name: str, script: Path, isolation: Literal["task", "process"] = "task", **kw: Any) -> AgentSpec:
    return AgentSpec(
        name=name,
        instructions=f"You are the {name}.",
        model=f"scripted:{script}",
        tools=[ft.lookup, "consult"],
        isolation=isolation,
        **kw,
    )


async def _wait_until_claimed_again(store: Any, run_id: str, epoch: int) -> None:
    for _ in range(3000):
        if (await store.get_run(run_id)).epoch > epoch:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"run {run_id} was not taken over after epoch {epoch}")


async def _tool_texts(url: str, run_id: str) -> list[str]:
    async with await open_store(url) as store:
        steps = await store.steps(run_id)
    return [s.messages[0]["text"] for s in steps if s.kind in ("tool", "consult") and s.messages]


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_a_consult_returns_the_other_agents_answer(
    tmp_path: Path, isolation: Literal["task", "process"]
) -> None:
    ceo = write_script(
        tmp_path,
        "ceo",
        [
            {"tool_calls": [call("consult", agent="cfo", question="How much can we spend on Q3?")]},
            {"text": "Decision: go, because {last_tool}"},
        ],
    )
    cfo = write_script(tmp_path, "cfo", [{"text": "We can spend 10k on: {task}"}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        children = [_spec("ceo", ceo, isolation).child_spec(), _spec("cfo", cfo, isolation).child_spec()]
        await node.start_supervisor(SupervisorSpec(children))
        run_id = await node.submit("ceo", "Plan Q3")
        result = await node.result(run_id, timeout=30)
        asked = await node.result(consult_run_id(f"{run_id}:1"), timeout=5)
    assert result.status == "succeeded"
    assert result.output == "Decision: go, because We can spend 10k on: How much can we spend on Q3?"
    assert asked.agent == "cfo" and asked.status == "succeeded"
    assert len(calls_made(cfo)) == 1


async def test_a_consult_past_its_deadline_fails_the_step_not_the_agent(tmp_path: Path) -> None:
    ceo = write_script(
        tmp_path,
        "ceo",
        [
            {"tool_calls": [call("consult", agent="cfo", question="Numbers?", deadline_s=0.3)]},
            {"text": "Went ahead without the CFO: {last_tool}"},
        ],
    )
    cfo = write_script(tmp_path, "cfo", [{"text": "late numbers", "delay_s": 1.5}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        sup = await node.start_supervisor(
            SupervisorSpec([_spec("ceo", ceo).child_spec(), _spec("cfo", cfo).child_spec()])
        )
        run_id = await node.submit("ceo", "Plan Q3")
        result = await node.result(run_id, timeout=30)
        children = await sup.which_children()
        late = await node.result(consult_run_id(f"{run_id}:1"), timeout=30)
    assert result.status == "succeeded"
    assert result.output is not None and "did not answer 'ceo' within the consult deadline" in result.output
    assert late.status == "succeeded" and late.output == "late numbers", "the cfo finished, too late"
    assert all(c.restarts == 0 for c in children), "a missed deadline is no crash"
    texts = await _tool_texts(url, run_id)
    assert texts[0].startswith("'cfo' did not answer")


async def test_a_consult_cycle_is_refused_at_once(tmp_path: Path) -> None:
    ceo = write_script(
        tmp_path,
        "ceo",
        [
            {"tool_calls": [call("consult", agent="cfo", question="Budget?")]},
            {"text": "CEO heard: {last_tool}"},
        ],
    )
    cfo = write_script(
        tmp_path,
        "cfo",
        [
            {"tool_calls": [call("consult", agent="ceo", question="What do you want the budget for?")]},
            {"text": "10k (asking back was refused: {last_tool})"},
        ],
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(
            SupervisorSpec([_spec("ceo", ceo).child_spec(), _spec("cfo", cfo).child_spec()])
        )
        run_id = await node.submit("ceo", "Plan")
        result = await node.result(run_id, timeout=30)
    assert result.status == "succeeded"
    assert result.output is not None
    assert "consult refused: ceo → cfo → ceo would ask 'ceo' again (a cycle)" in result.output
    async with await open_store(url) as store:
        ceo_runs = await store.list_runs(agent="ceo")
    assert [r.run_id for r in ceo_runs] == [run_id], "the refused consult created no run"


async def test_an_agent_cannot_consult_itself(tmp_path: Path) -> None:
    solo = write_script(
        tmp_path,
        "solo",
        [{"tool_calls": [call("consult", agent="solo", question="me?")]}, {"text": "{last_tool}"}],
    )
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_spec("solo", solo).child_spec()]))
        result = await node.result(await node.submit("solo", "x"), timeout=10)
    assert "solo → solo" in str(result.output)


async def test_an_asker_killed_mid_consult_replays_it_and_the_other_agent_answers_once(
    tmp_path: Path,
) -> None:
    ceo = write_script(
        tmp_path,
        "ceo",
        [
            {"tool_calls": [call("consult", agent="cfo", question="Numbers?", deadline_s=60)]},
            {"text": "CEO heard: {last_tool}"},
        ],
    )
    cfo = write_script(
        tmp_path,
        "cfo",
        [{"tool_calls": [call("lookup", topic="ledger")]}, {"text": "Revenue is up ({last_tool})."}],
    )
    url = f"sqlite:///{tmp_path}/j.db"
    run_id = f"ask-{uuid.uuid4().hex}"
    asked = consult_run_id(f"{run_id}:1")
    ft.hold_file(asked).write_text("lookup:ledger")
    async with Node(store=url) as node:
        children = [_spec("ceo", ceo, "process").child_spec(), _spec("cfo", cfo).child_spec()]
        await node.start_supervisor(SupervisorSpec(children, intensity=3, period=30))
        await node.submit("ceo", "Plan", run_id=run_id)
        await wait_for(ft.holding_file(asked).exists, timeout=30, what="the cfo to be working on the consult")
        store = await open_store(url)
        owner = (await store.get_run(run_id)).lease_owner
        assert owner is not None
        asker_pid = int(owner.split("@")[1].split(":")[0])
        assert asker_pid != os.getpid()
        os.kill(asker_pid, signal.SIGKILL)
        # the restarted asker takes the run over (a new epoch) while the consult is still open
        first_epoch = (await store.get_run(run_id)).epoch
        await _wait_until_claimed_again(store, run_id, first_epoch)
        ft.release_file(asked).write_text("go")
        result = await node.result(run_id, timeout=30)
        cfo_runs = await store.list_runs(agent="cfo")
        await store.close()
    assert result.status == "succeeded"
    assert result.output == "CEO heard: Revenue is up (fact about ledger)."
    assert [r.run_id for r in cfo_runs] == [asked], "asked once"
    assert len(calls_made(cfo)) == 2, "answered once"
    ceo_calls = calls_made(ceo)
    assert [c["turn"] for c in ceo_calls] == [0, 1], "the first model call was replayed, not repeated"
    assert ceo_calls[0]["pid"] == asker_pid and ceo_calls[1]["pid"] != asker_pid
    assert result.replayed_calls == 1 and result.model_calls == 2


async def test_an_agent_may_consult_only_the_agents_it_was_given(tmp_path: Path) -> None:
    ceo = write_script(
        tmp_path,
        "ceo",
        [{"tool_calls": [call("consult", agent="lawyer", question="Can we?")]}, {"text": "{last_tool}"}],
    )
    spec = _spec("ceo", ceo, consults=["cfo"])
    assert list(spec.to_json()["consults"]) == ["cfo"]
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        result = await node.result(await node.submit("ceo", "x"), timeout=10)
    assert result.output == "agent 'ceo' may not consult 'lawyer' (allowed: cfo)"


async def test_a_diverged_run_asks_its_new_question_instead_of_reading_the_old_answer(
    tmp_path: Path,
) -> None:
    cfo = write_script(tmp_path, "cfo", [{"text": "Answer to: {task}"}])
    url = f"sqlite:///{tmp_path}/j.db"
    for version, question in ((1, "Q3 budget?"), (2, "Q4 budget?")):
        ceo = write_script(
            tmp_path,
            f"ceo{version}",
            [{"tool_calls": [call("consult", agent="cfo", question=question)]}, {"text": "{last_tool}"}],
        )
        spec = dataclasses.replace(_spec("ceo", ceo), instructions=f"Version {version}.")
        async with Node(store=url) as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec(), _spec("cfo", cfo).child_spec()]))
            if version == 1:
                await node.submit("ceo", "Plan", run_id="r")
            else:  # the changed instructions make the resumed run diverge at its first step
                async with await open_store(url) as store:
                    await store.update_run("r", status="queued")
                runs_of(node).wake("ceo")
            done = await node.result("r", timeout=20)
        assert done.status == "succeeded"
        assert done.output == f"Answer to: {question}", "each timeline got the answer to its own question"
    async with await open_store(url) as store:
        assert (await store.step("r", 1)).idempotency_key == "r:1:1"  # type: ignore[union-attr]
        assert (await store.get_run(consult_run_id("r:1:1"))).input == "Q4 budget?"
