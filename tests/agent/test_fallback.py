"""Fallback models with scripted models: a step whose model is down goes to the next one, the journal
and ``beamish show`` name the model that answered, a refusal does not fall back, a near deadline
cuts the primary's retries short, and a killed agent replays the fallback's recorded answer."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, RetryPolicy
from beamish.journal import open_store
from beamish.journal._timeline import run_timeline
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_tools as ft
from ._scripts import call, calls_made, write_script

pytestmark = pytest.mark.timeout(60)

NO_WAIT = RetryPolicy(max_attempts=3, backoff_min_s=0.0, backoff_max_s=0.0, jitter=0.0)


def _down(n: int, status: int = 529) -> list[dict[str, Any]]:
    return [{"fault": "server_error", "status": status}] * n


def _agent(primary: Path, fallback: Path, **kw: Any) -> AgentSpec:
    values: dict[str, Any] = {"isolation": "task", "retry": NO_WAIT, **kw}
    return AgentSpec(
        name="poster",
        instructions="Post the update.",
        model=[f"scripted:{primary}", f"scripted:{fallback}"],
        **values,
    )


async def _run(tmp_path: Path, spec: AgentSpec, **submit: Any) -> tuple[Any, list[Any], Any]:
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        rid = await node.submit("poster", "post it", **submit)
        result = await node.result(rid, timeout=30)
    async with await open_store(url) as store:
        steps = await store.steps(rid)
        timeline = await run_timeline(store, rid)
        events = [e for _, e in await store.events() if e.kind == "model.fallback"]
    return result, steps, (timeline, events)


async def test_a_step_whose_retries_are_spent_goes_to_the_fallback_and_show_names_it(tmp_path: Path) -> None:
    primary = write_script(tmp_path, "primary", [{"text": "from the primary", "faults": _down(3)}])
    fallback = write_script(tmp_path, "fallback", [{"text": "from the fallback"}])
    result, steps, (timeline, events) = await _run(tmp_path, _agent(primary, fallback))
    assert result.status == "succeeded" and result.output == "from the fallback"
    assert len(calls_made(primary)) == 3, "the primary's three attempts, then the same step moves on"
    assert [s.name for s in steps] == [f"scripted:{fallback}"], "the journal names the model that answered"
    assert timeline.steps[0].model == f"scripted:{fallback}", "and so does `beamish show`"
    (event,) = events
    assert (event.data["from"], event.data["to"], event.data["seq"]) == (
        f"scripted:{primary}",
        f"scripted:{fallback}",
        0,
    )
    assert "529" in event.data["error"]


async def test_a_fallback_priced_by_the_configs_prices_table_is_charged_its_own_price(tmp_path: Path) -> None:
    from beamish.company import load_config
    from beamish.company._tree import agent_budget

    primary = write_script(tmp_path, "primary", [{"text": "from the primary", "faults": _down(3)}])
    usage = {"input_tokens": 1000, "output_tokens": 100}
    fallback = write_script(tmp_path, "fallback", [{"text": "from the fallback", "usage": usage}])
    config = tmp_path / "beamish.toml"
    config.write_text(
        "[agents.poster]\n"
        'instructions = "Post the update."\n'
        'model = ["scripted:primary.json", "scripted:fallback.json"]\n'
        "price = { input_per_mtok = 100.0, output_per_mtok = 100.0 }\n"
        'prices = { "scripted:fallback.json" = { input_per_mtok = 2.0, output_per_mtok = 10.0 } }\n'
    )
    loaded = load_config(config)
    spec = _agent(primary, fallback, budget=agent_budget(loaded.agents["poster"], loaded))
    result, steps, _ = await _run(tmp_path, spec)
    assert result.status == "succeeded" and [s.name for s in steps] == [f"scripted:{fallback}"]
    async with await open_store(f"sqlite:///{tmp_path}/j.db") as store:
        run = await store.get_run(result.run_id)
        ledger = await store.fetchall("SELECT model, amount_usd FROM ledger WHERE kind = 'spend'")
    cost = 1000 * 2.0 / 1e6 + 100 * 10.0 / 1e6  # the table's price, not the first model's
    assert run is not None and run.spend_usd == pytest.approx(cost)
    assert [(r["model"], pytest.approx(r["amount_usd"])) for r in ledger] == [(f"scripted:{fallback}", cost)]


async def test_a_refusal_does_not_fall_back(tmp_path: Path) -> None:
    refusal = [{"fault": "client_error", "status": 400, "message": "prompt is too long"}]
    primary = write_script(tmp_path, "primary", [{"text": "never", "faults": refusal}])
    fallback = write_script(tmp_path, "fallback", [{"text": "from the fallback"}])
    result, _steps, (_, events) = await _run(tmp_path, _agent(primary, fallback))
    assert result.status == "failed"
    assert "prompt is too long" in str(result.reason)
    assert calls_made(fallback) == [] and events == [], "the next model would refuse the same request"


async def test_a_near_deadline_leaves_the_primary_after_one_attempt(tmp_path: Path) -> None:
    """The primary's retries would wait 5 s + 10 s; the run has 10 s: one attempt, then the fallback."""
    primary = write_script(tmp_path, "primary", [{"text": "late", "faults": _down(3, 503)}])
    fallback = write_script(tmp_path, "fallback", [{"text": "in time"}])
    slow = RetryPolicy(max_attempts=3, backoff_min_s=5.0, backoff_max_s=10.0, jitter=0.0)
    started = time.monotonic()
    result, _, (_, events) = await _run(tmp_path, _agent(primary, fallback, retry=slow), deadline="10s")
    assert result.status == "succeeded" and result.output == "in time"
    assert len(calls_made(primary)) == 1
    assert time.monotonic() - started < 5.0, "no backoff was waited"
    assert [e.data["why"] for e in events] == ["it failed once with the deadline near"]


async def test_without_a_deadline_the_primary_gets_its_retries(tmp_path: Path) -> None:
    primary = write_script(tmp_path, "primary", [{"text": "from the primary", "faults": _down(2)}])
    fallback = write_script(tmp_path, "fallback", [{"text": "from the fallback"}])
    result, steps, (_, events) = await _run(tmp_path, _agent(primary, fallback))
    assert result.output == "from the primary" and events == []
    assert [s.name for s in steps] == [f"scripted:{primary}"]


async def test_a_killed_agent_replays_the_fallbacks_answer_and_pays_for_it_once(tmp_path: Path) -> None:
    """SIGKILL while the tool the fallback asked for runs: the restarted process replays step 0
    from the journal (neither model is asked again for it) and goes on live from step 2."""
    primary = write_script(
        tmp_path, "primary", [{"text": "x", "faults": _down(3)}, {"text": "x", "faults": _down(3)}]
    )
    fallback = write_script(
        tmp_path,
        "fallback",
        [{"tool_calls": [call("lookup", topic="hold-here")]}, {"text": "done: {last_tool}"}],
    )
    spec = _agent(primary, fallback, isolation="process", tools=[ft.lookup])
    run_id = f"fallback-{uuid.uuid4().hex}"
    ft.hold_file(run_id).write_text("lookup:hold-here")
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        await node.submit("poster", "post it", run_id=run_id)
        holding = ft.holding_file(run_id)
        await wait_for(holding.exists, timeout=30, what="the agent to reach the held tool")
        os.kill(int(holding.read_text()), signal.SIGKILL)
        result = await node.result(run_id, timeout=30)
    assert result.status == "succeeded" and result.output == "done: fact about hold-here"
    turns = [c.get("turn") for c in calls_made(fallback)]
    assert turns.count(0) == 1, "the fallback's first answer was paid for once and replayed"
    assert len([c for c in calls_made(primary) if c.get("turn") == 0]) == 3, (
        "no retry of step 0 after the kill"
    )
    async with await open_store(url) as store:
        steps = await store.steps(run_id)
    assert [(s.seq, s.kind, s.name) for s in steps] == [
        (0, "llm", f"scripted:{fallback}"),
        (1, "tool", "lookup"),
        (2, "llm", f"scripted:{fallback}"),
    ]


def test_a_spec_with_fallbacks_crosses_a_process_and_bad_lists_are_refused() -> None:
    from beamish import BreakerPolicy, SpecError

    spec = AgentSpec(
        name="poster",
        instructions="x",
        model=["anthropic:claude-sonnet-4-5", "openai:gpt-4o"],
        model_options={"max_retries": 0, "openai:gpt-4o": {"base_url": "http://127.0.0.1:9/v1"}},
        breaker={"failures": 2, "cooldown_s": 10},
    )
    again = AgentSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.breaker == BreakerPolicy(failures=2, cooldown_s=10)
    assert again.models == ("anthropic:claude-sonnet-4-5", "openai:gpt-4o")
    assert again.options_for("openai:gpt-4o") == {"max_retries": 0, "base_url": "http://127.0.0.1:9/v1"}
    assert again.options_for("anthropic:claude-sonnet-4-5") == {"max_retries": 0}
    assert AgentSpec(name="a", instructions="x", model=["openai:gpt-4o"]).model == "openai:gpt-4o"
    for bad, match in (
        ([], "at least one"),
        (["openai:gpt-4o", "openai:gpt-4o"], "twice"),
        (["nope"], "provider"),
    ):
        with pytest.raises(SpecError, match=match):
            AgentSpec(name="a", instructions="x", model=bad)
    with pytest.raises(SpecError, match="failures"):
        AgentSpec(name="a", instructions="x", model="openai:gpt-4o", breaker={"failures": 0})
