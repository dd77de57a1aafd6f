"""Semantic supervision inside real agents on the scripted model: loops, budgets, hangs, pricing."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import beamish
from beamish import AgentSpec, Hung, Looping, OverBudget
from beamish.agent._budget import Budget
from beamish.agent._pricing import Price
from beamish.agent._watchdog import Watchdog
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock, wait_for

from . import fixture_tools as ft

pytestmark = pytest.mark.timeout(30)

HUNG_ONCE: set[str] = set()


@beamish.tool
async def search(query: str) -> str:
    """Search the web (always finds nothing here)."""
    return f"no results for {query}"


@beamish.tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    return f"page {url}"


@beamish.tool
async def slow_report(ctx: beamish.ToolContext) -> str:
    """Compile a report; the first time per run it hangs without a word."""
    if ctx.run_id not in HUNG_ONCE:
        HUNG_ONCE.add(ctx.run_id)
        await asyncio.Event().wait()  # never set: silence until the watchdog acts
    return "report ready"


@beamish.tool
async def post(text: str) -> str:
    """Post an update (the service is down)."""
    raise RuntimeError("HTTP 503 from the social network")


@beamish.tool
async def read(f: str, rev: int = 1) -> str:
    """Read a file."""
    return f"body {f}" + (f" rev {rev}" if rev > 1 else "")


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def script(tmp: Path, name: str, turns: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    path = tmp / f"{name}.json"
    data: dict[str, Any] = {"call_log": str(tmp / f"{name}.calls.jsonl"), **extra}
    if turns is not None:
        data["turns"] = turns
    path.write_text(json.dumps(data))
    return path


def calls_made(path: Path) -> int:
    log = path.with_name(path.stem + ".calls.jsonl")
    return len(log.read_text().splitlines()) if log.exists() else 0


def agent(path: Path, name: str = "scout", **kw: Any) -> AgentSpec:
    kw.setdefault("budget", Budget(prices={"scripted:*": Price.free()}))
    return AgentSpec(
        name=name,
        instructions="You research.",
        model=f"scripted:{path}",
        tools=kw.pop("tools", [search, fetch, slow_report, post, read]),
        isolation="task",
        **kw,
    )


async def events_of(store_url: str, kind: str) -> list[dict[str, Any]]:
    async with await open_store(store_url) as store:
        rows = await store.fetchall("SELECT body FROM events WHERE kind = ? ORDER BY id", (kind,))
    return [json.loads(r["body"])["data"] for r in rows]


async def test_an_unknown_model_without_a_price_refuses_to_run(tmp_path: Path) -> None:
    path = script(tmp_path, "unpriced", [{"text": "hello"}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        spec = agent(path, budget=Budget(per_day_usd=1.0))  # caps, but no price for the scripted model
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("scout", "go")
        result = await node.result(run_id, timeout=10)
    assert result.status == "failed"
    assert "no price" in result.reason.message  # type: ignore[union-attr]
    assert calls_made(path) == 0
    refused = await events_of(url, "run.refused")
    assert refused and "scripted" in refused[0]["error"]


LOOPING_TURNS = [{"text": "Searching.", "tool_calls": [call("search", query="beamish pricing")]}] * 6 + [
    {"text": "done"}
]


async def test_a_loop_is_nudged_then_paused_and_the_agent_serves_its_next_run(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "loop",
        scripts=[
            {"when": "research", "turns": LOOPING_TURNS},
            {"turns": [{"text": "Second task done."}]},
        ],
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([agent(path).child_spec()]))
        looping = await node.submit("scout", "research beamish")
        result = await node.result(looping, timeout=10)
        assert result.status == "paused"
        assert isinstance(result.reason, Looping)
        assert result.reason.pattern == "same_action_same_result"
        # the loop was a run-level failure: the same agent serves its next run
        nxt = await node.submit("scout", "something else")
        assert (await node.result(nxt, timeout=10)).output == "Second task done."
        async with await open_store(url) as store:
            steps = await store.steps(looping)
    nudges = [s for s in steps if s.kind == "signal"]
    assert len(nudges) == 1 and "stuck" in str(nudges[0].response)
    nudged = await events_of(url, "loop.nudged")
    detected = await events_of(url, "loop.detected")
    assert [e["pattern"] for e in nudged] == ["same_action_same_result"]
    assert detected[0]["action"] == "pause"
    assert detected[0]["repeated"] == ['search({"query":"beamish pricing"})'] * 4
    # a nudge after the 4th identical result, a pause after one more: 5 calls, then 1 for the next run
    assert calls_made(path) == 5 + 1


async def test_a_run_resumed_after_a_loop_pause_stops_when_it_loops_again(tmp_path: Path) -> None:
    turns = [{"text": "Searching.", "tool_calls": [call("search", query="x")]}] * 8 + [{"text": "done"}]
    path = script(tmp_path, "loop2", turns)
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([agent(path).child_spec()]))
        run_id = await node.submit("scout", "go")
        assert (await node.result(run_id, timeout=10)).status == "paused"
        assert await node.resume("scout") == 1
        await wait_for(lambda: calls_made(path) >= 6, what="the resumed run to call the model")
        result = await node.result(run_id, timeout=10)
    assert result.status == "failed"
    assert isinstance(result.reason, Looping)
    assert result.replayed_calls == 5
    # resuming replayed the five calls from the journal and made one more live: looping again stops it
    assert calls_made(path) == 6
    actions = [e["action"] for e in await events_of(url, "loop.detected")]
    assert actions == ["pause", "stop"]
    assert len(await events_of(url, "loop.nudged")) == 1  # the replayed nudge is not announced again


async def test_over_budget_pauses_the_agent_with_limit_and_spend(tmp_path: Path) -> None:
    usage = {"input_tokens": 50, "output_tokens": 4000}  # within max_tokens, as a provider's would be
    turns = [
        {"text": "Fetching.", "tool_calls": [call("fetch", url=f"u{i}")], "usage": usage} for i in range(5)
    ]
    path = script(tmp_path, "costly", [*turns, {"text": "done", "usage": usage}])
    price = Price(input_per_mtok=1.0, output_per_mtok=10.0)  # $0.04005 a call, worst case ~$0.042
    url = f"sqlite:///{tmp_path}/j.db"
    clock = FakeClock()
    budget = Budget(per_day_usd=0.10, prices={"scripted:*": price})
    async with Node(store=url, clock=clock) as node:
        await node.start_supervisor(SupervisorSpec([agent(path, budget=budget).child_spec()]))
        run_id = await node.submit("scout", "go")
        result = await node.result(run_id, timeout=10)
        assert result.status == "paused"
        assert isinstance(result.reason, OverBudget)
        assert result.reason.limit == "agent.per_day_usd"
        assert result.reason.cap == pytest.approx(0.10)
        assert result.reason.spent == pytest.approx(0.0801)
        assert result.cost_usd == pytest.approx(0.0801)
        assert calls_made(path) == 2  # the third call's worst case did not fit: it was never made
        exceeded = await events_of(url, "budget.exceeded")
        assert exceeded[0]["spent_usd"] == pytest.approx(0.0801)
        assert exceeded[0]["needed_usd"] > 0.02
        assert [e["limit"] for e in await events_of(url, "budget.warning")] == ["per_day_usd"]
        # the agent as a whole is paused: its next run waits too
        other = await node.submit("scout", "another task")
        assert (await node.result(other, timeout=10)).status == "paused"
        # a new day in the budget's zone: resuming continues both runs, until the new day's cap
        clock.advance(86_400)
        assert await node.resume("scout") == 2
        await wait_for(lambda: calls_made(path) >= 4, what="the resumed runs")
        again = await node.result(run_id, timeout=10)
        assert again.status == "paused"
        assert again.cost_usd == pytest.approx(0.0801 * 2)
    assert calls_made(path) == 4


@pytest.mark.parametrize("hooks", [None, f"{ft.__name__}:wrapped_hooks"], ids=["plain", "wrapped"])
async def test_a_tool_that_hangs_is_detected_and_the_run_resumes_from_its_journal(
    tmp_path: Path, hooks: str | None
) -> None:
    turns = [
        {"text": "Looking.", "tool_calls": [call("fetch", url="a")]},
        {"text": "Compiling.", "tool_calls": [call("slow_report")]},
        {"text": "All done."},
    ]
    path = script(tmp_path, "hang", turns)
    url = f"sqlite:///{tmp_path}/j.db"
    clock = FakeClock()
    spec = agent(path, watchdog=Watchdog(hang_after_s=60), hooks=hooks)
    async with Node(store=url, clock=clock) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("scout", f"go {uuid.uuid4().hex}")
        await wait_for(lambda: run_id in HUNG_ONCE, what="the tool to hang")
        await wait_for(lambda: clock.sleepers > 0, what="the watchdog to wait")
        clock.advance(59)
        await asyncio.sleep(0)
        assert not (await events_of(url, "watchdog.hung"))
        clock.advance(2)
        # the supervisor restarts the agent after a short backoff on the same (fake) clock: let the
        # clock run on, a little at a time, until the run is done
        waiting = asyncio.create_task(node.result(run_id, timeout=10))
        await wait_for(lambda: clock.advance(0.05) or waiting.done(), timeout=10, what="the resumed run")
        result = await waiting
    assert result.status == "succeeded"
    assert result.output == "All done."
    hung = await events_of(url, "watchdog.hung")
    assert len(hung) == 1 and hung[0]["reason"]["kind"] == Hung.kind
    assert 61 <= hung[0]["silent_for_s"] < 62
    # the restarted agent replayed both model calls from the journal and made only the third live
    assert calls_made(path) == 3


async def test_a_company_cap_in_the_store_pauses_every_agent(tmp_path: Path) -> None:
    from beamish.agent._budget import set_company_budget

    usage = {"input_tokens": 50, "output_tokens": 4000}
    turns = [
        {"text": "Fetching.", "tool_calls": [call("fetch", url=f"u{i}")], "usage": usage} for i in range(3)
    ]
    path = script(tmp_path, "company", [*turns, {"text": "done", "usage": usage}])
    price = {"scripted:*": Price(input_per_mtok=1.0, output_per_mtok=10.0)}  # ~$0.04 a call
    url = f"sqlite:///{tmp_path}/j.db"
    async with await open_store(url) as store:
        await set_company_budget(store, Budget(per_month_usd=0.15))
    roomy = Budget(per_day_usd=10.0, prices=price)
    async with Node(store=url) as node:
        specs = [agent(path, name=n, budget=roomy).child_spec() for n in ("cfo", "coo")]
        await node.start_supervisor(SupervisorSpec(specs))
        first = await node.result(await node.submit("cfo", "go"), timeout=10)
        # three calls ($0.12) fit the company's $0.15; the fourth's worst case does not
        assert first.status == "paused"
        assert calls_made(path) == 3
        second = await node.result(await node.submit("coo", "go"), timeout=10)
    # the company as a whole is paused: the other agent makes no call at all
    assert second.status == "paused"
    assert isinstance(second.reason, OverBudget)
    assert second.reason.limit == "company.per_month_usd"
    assert calls_made(path) == 3
    exceeded = await events_of(url, "budget.exceeded")
    assert [e["scope"] for e in exceeded] == ["company"]
    assert exceeded[0]["agent"] == "cfo"


def _turns(*calls: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"text": "", "tool_calls": [c]} for c in calls] + [{"text": "finished"}]


_STAGNANT = [call("read", f=f) for f in "abc" + "acbbcaabcb" + "a"]
_NEAR_STAGNANT = list(_STAGNANT)
_NEAR_STAGNANT[11] = call("read", f="b", rev=2)  # one new result among the ten

RULES = {
    "same_action_same_result": (
        _turns(*[call("search", query="x")] * 5),
        _turns(*[call("search", query="x")] * 3, call("fetch", url="a"), call("search", query="x")),
    ),
    "same_action_failing": (
        _turns(*[call("post", text="launch")] * 4),
        _turns(*[call("post", text=f"launch v{i}") for i in range(4)]),
    ),
    "alternation": (
        _turns(*[call("fetch", url="a"), call("fetch", url="b")] * 4),
        _turns(
            *[call("fetch", url="a"), call("fetch", url="b")] * 2,
            call("fetch", url="a"),
            call("fetch", url="c"),
        ),
    ),
    "stagnation": (_turns(*_STAGNANT), _turns(*_NEAR_STAGNANT)),
}


@pytest.mark.parametrize("rule", sorted(RULES))
async def test_each_loop_rule_pauses_a_scripted_run_and_its_near_miss_finishes(
    tmp_path: Path, rule: str
) -> None:
    looping, near_miss = RULES[rule]
    path = script(tmp_path, rule, scripts=[{"when": "loop", "turns": looping}, {"turns": near_miss}])
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([agent(path).child_spec()]))
        stuck = await node.result(await node.submit("scout", "loop please"), timeout=10)
        fine = await node.result(await node.submit("scout", "work please"), timeout=10)
    assert stuck.status == "paused"
    assert isinstance(stuck.reason, Looping) and stuck.reason.pattern == rule
    assert fine.status == "succeeded", fine.reason
    assert fine.output == "finished"
    assert [e["pattern"] for e in await events_of(url, "loop.nudged")] == [rule]


@pytest.mark.parametrize("action", ["stop", "pause"])
async def test_a_hang_with_policy_stop_or_pause_does_not_resume_by_itself(
    tmp_path: Path, action: str
) -> None:
    from beamish.agent._policy import Policy

    turns = [
        {"text": "Compiling.", "tool_calls": [call("slow_report")]},
        {"text": "All done."},
    ]
    path = script(
        tmp_path, "hang", scripts=[{"when": "report", "turns": turns}, {"turns": [{"text": "next"}]}]
    )
    url = f"sqlite:///{tmp_path}/j.db"
    clock = FakeClock()
    spec = agent(path, watchdog=Watchdog(hang_after_s=60), policy=Policy(on_hang=action))  # type: ignore[arg-type]
    async with Node(store=url, clock=clock) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("scout", f"report {uuid.uuid4().hex}")
        await wait_for(lambda: run_id in HUNG_ONCE, what="the tool to hang")
        await wait_for(lambda: clock.sleepers > 0, what="the watchdog to wait")
        clock.advance(61)
        waiting = asyncio.create_task(node.result(run_id, timeout=10))
        await wait_for(lambda: clock.advance(0.05) or waiting.done(), timeout=10, what="the run's end")
        result = await waiting
        assert result.status == ("failed" if action == "stop" else "paused")
        assert isinstance(result.reason, Hung)
        # the restarted agent serves its next run
        nxt = asyncio.create_task(node.result(await node.submit("scout", "x"), timeout=10))
        await wait_for(lambda: clock.advance(0.05) or nxt.done(), timeout=10, what="the next run")
        assert (await nxt).output == "next"
    assert calls_made(path) == 2
    hung = await events_of(url, "watchdog.hung")
    assert [e["action"] for e in hung] == [action]


async def test_a_budget_pause_survives_a_node_restart_and_resume_lifts_it(
    tmp_path: Path, store_url: str
) -> None:
    usage = {"input_tokens": 50, "output_tokens": 4000}
    turns = [{"text": "Go.", "tool_calls": [call("fetch", url=f"u{i}")], "usage": usage} for i in range(3)]
    path = script(tmp_path, "restart", [*turns, {"text": "done", "usage": usage}])
    price = {"scripted:*": Price(input_per_mtok=1.0, output_per_mtok=10.0)}
    url = store_url
    tight = agent(path, budget=Budget(total_usd=0.05, prices=price))
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([tight.child_spec()]))
        first = await node.submit("scout", "go")
        assert (await node.result(first, timeout=10)).status == "paused"
    assert calls_made(path) == 1
    exceeded = await events_of(url, "budget.exceeded")
    assert exceeded[0]["step"] == 2 and exceeded[0]["limit"] == "total_usd"
    # a new node on the same store: the agent is still paused, a new run makes no call
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([tight.child_spec()]))
        second = await node.submit("scout", "again")
        assert (await node.result(second, timeout=10)).status == "paused"
        assert calls_made(path) == 1
    # a raised cap in the new config lifts the pause by itself: both runs finish
    roomy = agent(path, budget=Budget(total_usd=1.0, prices=price))
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([roomy.child_spec()]))
        assert await node.resume("scout") == 2
        assert (await node.result(first, timeout=10)).status == "succeeded"
        assert (await node.result(second, timeout=10)).status == "succeeded"


async def test_every_event_semantic_supervision_writes_is_a_known_kind(tmp_path: Path) -> None:
    from beamish._events import KINDS

    url = f"sqlite:///{tmp_path}/j.db"
    path = script(tmp_path, "mixed", [{"text": "s", "tool_calls": [call("search", query="x")]}] * 6)
    unpriced = script(tmp_path, "unpriced", [{"text": "hello"}])
    async with Node(store=url) as node:
        specs = [agent(path).child_spec(), agent(unpriced, name="other", budget=Budget()).child_spec()]
        await node.start_supervisor(SupervisorSpec(specs))
        await node.result(await node.submit("scout", "go"), timeout=10)
        await node.result(await node.submit("other", "go"), timeout=10)
        assert await node.resume("scout") == 1
    async with await open_store(url) as store:
        kinds = {r["kind"] for r in await store.fetchall("SELECT DISTINCT kind FROM events")}
    assert {"loop.nudged", "loop.detected", "run.refused"} <= kinds
    assert kinds <= KINDS, kinds - KINDS


@beamish.tool
async def explode() -> str:
    """A tool whose step trips a bug in the hooks (see fixture_tools.CrashingHooks)."""
    return "boom"


@pytest.mark.parametrize("action", ["stop", "pause"])
async def test_on_crash_stop_or_pause_keeps_a_crash_to_its_run(tmp_path: Path, action: str) -> None:
    from beamish.agent._policy import Policy

    scripts = [
        {"when": "crash", "turns": [{"text": "", "tool_calls": [call("explode")]}, {"text": "never"}]},
        {"turns": [{"text": "next run"}]},
    ]
    path = script(tmp_path, "crash", scripts=scripts)
    url = f"sqlite:///{tmp_path}/j.db"
    spec = agent(
        path,
        tools=[explode],
        policy=Policy(on_crash=action),  # type: ignore[arg-type]
        hooks=f"{ft.__name__}:crashing_hooks",
    )
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        crashed = await node.result(await node.submit("scout", "crash now"), timeout=10)
        nxt = await node.result(await node.submit("scout", "other"), timeout=10)
    assert crashed.status == ("failed" if action == "stop" else "paused")
    assert "a bug in the loop's machinery" in crashed.reason.message  # type: ignore[union-attr]
    assert nxt.output == "next run"
