"""Every agent is protected unless its author opts out.

``AgentSpec(name, instructions, model, tools)`` — no budget, no watchdog — gets what a
``beamish.toml`` agent gets: the watchdog (hang, stream stalls, step cap) and the loop detector with
its nudge → pause → stop ladder, in a task or in its own process, native or ``entry=``. Only
``watchdog=None`` takes that away, and the agent then says so: an ``agent.unprotected`` event at its
start and a mark in its status.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, Budget, Looping, Watchdog
from beamish.agent._runs import runs_of
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_tools as ft

pytestmark = pytest.mark.timeout(60)

FETCH = {"text": "Fetching.", "tool_calls": [{"name": "fetch", "arguments": {"url": "https://x.test/a"}}]}
POLL = {"text": "Polling.", "tool_calls": [{"name": "poll_queue", "arguments": {}}]}


def script(tmp: Path, scripts: list[dict[str, Any]]) -> Path:
    path = tmp / "model.json"
    path.write_text(json.dumps({"scripts": scripts, "call_log": str(tmp / "model.calls.jsonl")}))
    return path


def calls_made(tmp: Path) -> int:
    log = tmp / "model.calls.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def default_spec(path: Path, isolation: str, **kw: Any) -> AgentSpec:
    """The spec a library user writes: a name, instructions, a model, tools — nothing else."""
    return AgentSpec(
        "scout", "You research.", f"scripted:{path}", [ft.fetch, ft.poll_queue], isolation=isolation, **kw
    )  # type: ignore[arg-type]


async def events_of(url: str, kind: str) -> list[dict[str, Any]]:
    async with await open_store(url) as store:
        return [e.data for _, e in await store.events() if e.kind == kind]


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_a_looping_agent_with_a_default_spec_is_paused_as_looping_and_serves_its_next_run(
    tmp_path: Path, isolation: str
) -> None:
    path = script(
        tmp_path,
        [
            {"when": "research", "turns": [FETCH] * 30 + [{"text": "done"}]},
            {"turns": [{"text": "Second task done."}]},
        ],
    )
    url = f"sqlite:///{tmp_path}/j.db"
    spec = default_spec(path, isolation)
    assert spec.budget is None
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        looping = await node.submit("scout", "research beamish", run_id=f"loop-{uuid.uuid4().hex}")
        result = await node.result(looping, timeout=30)
        assert result.status == "paused"
        assert isinstance(result.reason, Looping) and result.reason.pattern == "same_action_same_result"
        assert calls_made(tmp_path) <= 6, "stopped after a handful of calls, not at max_turns (200)"
        nxt = await node.submit("scout", "something else")
        following = await node.result(nxt, timeout=30)
    assert (following.status, following.output) == ("succeeded", "Second task done.")
    # nudged after the 4th identical result, paused at the 5th; one more call for the next run
    assert calls_made(tmp_path) == 5 + 1
    assert [e["action"] for e in await events_of(url, "loop.nudged")] == ["nudge"]
    assert [e["action"] for e in await events_of(url, "loop.detected")] == ["pause"]
    assert await events_of(url, "agent.unprotected") == []


async def test_a_near_miss_the_same_tool_with_new_results_each_time_is_not_stopped(tmp_path: Path) -> None:
    path = script(tmp_path, [{"turns": [POLL] * 12 + [{"text": "Read 12 messages."}]}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([default_spec(path, "task").child_spec()]))
        run_id = await node.submit("scout", "drain the queue", run_id=f"poll-{uuid.uuid4().hex}")
        result = await node.result(run_id, timeout=30)
    assert (result.status, result.output) == ("succeeded", "Read 12 messages.")
    assert calls_made(tmp_path) == 13
    assert await events_of(url, "loop.nudged") == [] and await events_of(url, "loop.detected") == []


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_an_agent_that_opts_out_with_watchdog_none_runs_unprotected_and_says_so(
    tmp_path: Path, isolation: str
) -> None:
    path = script(tmp_path, [{"turns": [FETCH] * 8 + [{"text": "done at last"}]}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(
            SupervisorSpec([default_spec(path, isolation, watchdog=None).child_spec()])
        )
        status = await runs_of(node).refs["scout"].call(("status",))
        run_id = await node.submit("scout", "go", run_id=f"free-{uuid.uuid4().hex}")
        result = await node.result(run_id, timeout=30)
    assert status["unprotected"] == "watchdog=None"
    # nothing watched it: the same call with the same result eight times, and no nudge
    assert (result.status, result.output) == ("succeeded", "done at last")
    assert calls_made(tmp_path) == 9
    assert await events_of(url, "loop.nudged") == []
    (announced,) = await events_of(url, "agent.unprotected")
    assert announced == {"agent": "scout", "why": "watchdog=None", "budget": False}


async def test_a_protected_agent_reports_no_gap_in_its_status(tmp_path: Path) -> None:
    path = script(tmp_path, [{"turns": [{"text": "hi"}]}])
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([default_spec(path, "task").child_spec()]))
        status = await runs_of(node).refs["scout"].call(("status",))
    assert status["unprotected"] is None


def test_a_process_agent_is_killed_as_hung_after_its_watchdogs_silence_unless_told_otherwise() -> None:
    # a loop blocked by synchronous code is seen from outside the process, at the watchdog's limit
    assert default_spec(Path("m.json"), "process").process_hang_after_s == Watchdog().hang_after_s
    tight = default_spec(Path("m.json"), "process", watchdog=Watchdog(hang_after_s=7))
    assert tight.process_hang_after_s == 7
    assert default_spec(Path("m.json"), "process", watchdog=None).process_hang_after_s is None
    assert default_spec(Path("m.json"), "process", hang_after_s=3).process_hang_after_s == 3


def test_the_default_watchdog_is_the_one_a_config_agent_gets() -> None:
    from beamish.company._schema import WatchdogSection

    assert Watchdog(**WatchdogSection().model_dump()) == Watchdog()


def test_a_watchdog_given_as_a_mapping_is_validated_when_the_spec_is_built() -> None:
    from beamish import SpecError

    spec = default_spec(Path("m.json"), "task", watchdog={"max_steps": 9})
    assert spec.watchdog == Watchdog(max_steps=9)
    with pytest.raises(SpecError, match="unknown key 'max_step'"):
        default_spec(Path("m.json"), "task", watchdog={"max_step": 9})


async def test_an_unpriced_model_runs_at_zero_without_caps_and_is_refused_under_company_caps(
    tmp_path: Path,
) -> None:
    from beamish.agent._budget import set_company_budget

    path = script(tmp_path, [{"turns": [{"text": "hi", "usage": {"input_tokens": 9, "output_tokens": 2}}]}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([default_spec(path, "task").child_spec()]))
        free = await node.result(await node.submit("scout", "one"), timeout=30)
        assert (free.status, free.cost_usd) == ("succeeded", 0.0)  # no cap to keep: not refused
        async with await open_store(url) as store:
            await set_company_budget(store, Budget(per_month_usd=5.0))
        capped = await node.result(await node.submit("scout", "two"), timeout=30)
    # with a cap to keep, a model with no price fails closed before any call
    assert capped.status == "failed" and "no price" in capped.reason.message  # type: ignore[union-attr]
    assert calls_made(tmp_path) == 1
    assert len(await events_of(url, "run.refused")) == 1


def test_own_hooks_count_as_protection_only_when_they_wrap_the_guard_with_a_watchdog() -> None:
    from beamish.agent._hooks import NullHooks, resolve_hooks, unprotected
    from beamish.testing import FakeClock

    def check(**kw: Any) -> str | None:
        spec = default_spec(Path("m.json"), "task", **kw)
        return unprotected(spec, resolve_hooks(spec, None, FakeClock()))

    assert check() is None
    assert check(hooks=f"{ft.__name__}:wrapped_hooks") is None  # e.g. a tracing layer around the guard
    assert check(hooks=lambda spec, store, clock: NullHooks()) == "its own hooks have no watchdog"
    assert check(watchdog=None) == "watchdog=None"
    assert check(watchdog=None, budget=Budget()) == "watchdog=None"  # caps kept, nothing watched


async def test_opting_out_with_a_budget_keeps_the_caps_and_watches_nothing(tmp_path: Path) -> None:
    from beamish import OverBudget, Price

    usage = {"input_tokens": 10, "output_tokens": 100}
    path = script(tmp_path, [{"turns": [{**FETCH, "usage": usage}] * 8 + [{"text": "done", "usage": usage}]}])
    price = {"scripted:*": Price(input_per_mtok=1.0, output_per_mtok=1000.0)}  # $0.10 a call
    budget = Budget(per_run_usd=0.75, prices=price)
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        spec = default_spec(path, "task", watchdog=None, budget=budget, max_tokens=100)
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        result = await node.result(await node.submit("scout", "go"), timeout=30)
    # eight identical calls went unremarked; the cap, not a loop rule, ended the run
    assert result.status == "paused" and isinstance(result.reason, OverBudget)
    assert calls_made(tmp_path) == 7
    assert await events_of(url, "loop.nudged") == []
    (announced,) = await events_of(url, "agent.unprotected")
    assert announced["budget"] is True
