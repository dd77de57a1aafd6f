"""Context that never overflows: a long run on a small window compacts (or trims, or fails clearly)
and never sends a request over the window; what is folded keeps tool calls with their results."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, ContextFull, ContextLimit, SpecError, Watchdog
from beamish.agent._context import handles, plan_fold, resolve_window
from beamish.agent._messages import Message, ToolCall
from beamish.journal import open_store
from beamish.journal._timeline import run_timeline
from beamish.runtime import Node, SupervisorSpec, exit_from_json

from . import fixture_tools as ft
from ._context_scripts import write_long_script
from ._scripts import call, calls_made, write_script

pytestmark = pytest.mark.timeout(90)

WINDOW = 3000
TURNS = 150  # 151 model calls and 150 tool calls: a 301-step run


def _agent(script: Path, **kw: Any) -> AgentSpec:
    return AgentSpec(
        name="researcher",
        instructions="You research.",
        model=kw.pop("model", f"scripted:{script}"),
        tools=[ft.lookup],
        isolation="task",
        watchdog=Watchdog(max_steps=None),
        max_tokens=200,
        **kw,
    )


async def _run(store_url: str, spec: AgentSpec, run_id: str) -> Any:
    async with Node(store=store_url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        await node.submit(spec.name, "Research every topic", run_id=run_id)
        return await node.result(run_id, timeout=80)


def _never_over(calls: list[dict[str, Any]], window: int) -> None:
    assert calls, "the scripted model logged no call"
    assert not [c for c in calls if c.get("over_window")], "a request was sent over the window"
    for c in calls:
        assert c["tokens"] + c["max_tokens"] <= window, c


async def test_a_300_step_run_on_a_small_window_compacts_and_never_sends_a_request_over_it(
    store_url: str, tmp_path: Path
) -> None:
    script = write_long_script(tmp_path, "long", TURNS, window=WINDOW)
    run_id = f"long-{uuid.uuid4().hex}"
    result = await _run(store_url, _agent(script), run_id)

    assert result.status == "succeeded", result.reason
    assert result.output == f"Done: fact about topic-{TURNS - 1:04d}."
    calls = calls_made(script)
    _never_over(calls, WINDOW)
    turns = [c["turn"] for c in calls if not c.get("compact")]
    assert turns == list(range(TURNS + 1)), "every turn of the script was played once, in order"
    compactions = [c for c in calls if c.get("compact")]
    assert compactions, "the conversation outgrew the window, so it was compacted"
    async with await open_store(store_url) as store:
        steps = await store.steps(run_id)
        events = [e for _, e in await store.events(0, kinds=["run.compacted"], subject=run_id)]
        timeline = await run_timeline(store, run_id)
    kinds = [s.kind for s in steps]
    assert kinds.count("llm") + kinds.count("tool") == 2 * TURNS + 1 >= 300
    assert kinds.count("compact") == len(compactions)
    assert events and all(e.data["policy"] == "compact" and e.data["window"] == WINDOW for e in events)
    assert all(
        e.data["tokens_saved"] > 0 and e.data["tokens_before"] > e.data["tokens_after"] for e in events
    )
    assert sum(e.data["to_seq"] - e.data["from_seq"] + 1 for e in events) == len(compactions)
    shown = [s.to_json() for s in timeline.steps if s.kind == "compact"]
    assert shown[0]["model"] == f"scripted:{script}" and shown[0]["tokens"]["in"] > 0
    assert "folded" in shown[0]["arguments"] and "scripted" not in str(shown[0]["result"])
    assert str(shown[0]["result"]).startswith("Earlier turns looked up")


async def test_a_fold_too_big_for_one_call_is_summarized_in_chunks_each_inside_the_window(
    tmp_path: Path,
) -> None:
    script = write_long_script(tmp_path, "long", 80, window=WINDOW)
    limit = ContextLimit(threshold=0.95, keep_turns=1)  # the fold is nearly the whole window
    store_url = f"sqlite:///{tmp_path}/j.db"
    result = await _run(store_url, _agent(script, context=limit), "chunked")
    assert result.status == "succeeded", result.reason
    _never_over(calls_made(script), WINDOW)
    async with await open_store(store_url) as store:
        events = [e.data for _, e in await store.events(0, kinds=["run.compacted"], subject="chunked")]
    assert events and all(e["to_seq"] > e["from_seq"] for e in events), "each fold took two calls or more"


async def test_the_same_run_without_context_management_is_refused_by_the_window(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "long", TURNS, window=WINDOW)
    result = await _run(f"sqlite:///{tmp_path}/j.db", _agent(script, context=None), "unmanaged")
    assert result.status == "failed"
    assert "prompt is too long" in str(result.reason)
    assert [c for c in calls_made(script) if c.get("over_window")]


@pytest.mark.parametrize("policy", ["compact", "trim"])
async def test_a_count_that_falls_short_costs_one_refusal_then_the_run_folds_and_goes_on(
    tmp_path: Path, policy: str
) -> None:
    # the model's own counter reports half of what it bills: the first request over the real
    # window is refused (unbilled); the agent learns the scale from the refusal, folds, finishes
    script = write_long_script(tmp_path, "short", TURNS, window=WINDOW, counter_scale=0.5)
    store_url = f"sqlite:///{tmp_path}/j.db"
    spec = _agent(script, context=ContextLimit(policy=policy))  # type: ignore[arg-type]
    result = await _run(store_url, spec, "short")
    assert result.status == "succeeded", result.reason
    calls = calls_made(script)
    refused = [c for c in calls if c.get("over_window")]
    assert len(refused) == 1, "one refusal teaches the scale; no request is refused twice"
    _never_over([c for c in calls if not c.get("over_window")], WINDOW)
    assert [c["turn"] for c in calls if "turn" in c] == list(range(TURNS + 1))
    async with await open_store(store_url) as store:
        events = [e.data for _, e in await store.events(0, kinds=["run.compacted"], subject="short")]
    assert events[0]["why"] == "provider_refused" and events[0]["scale"] >= 2.0
    assert {e["why"] for e in events[1:]} == {"threshold"} and len(events) > 1


async def test_the_fail_policy_names_a_providers_refusal_for_length(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "short", TURNS, window=WINDOW, counter_scale=0.5)
    result = await _run(f"sqlite:///{tmp_path}/j.db", _agent(script, context={"policy": "fail"}), "f")
    assert isinstance(result.reason, ContextFull)
    assert "the provider refused it as too long" in result.reason.detail


async def test_the_trim_policy_drops_older_turns_without_a_model_call(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "long", TURNS, window=WINDOW)
    store_url = f"sqlite:///{tmp_path}/j.db"
    result = await _run(store_url, _agent(script, context=ContextLimit(policy="trim")), "trimmed")
    assert result.status == "succeeded", result.reason
    calls = calls_made(script)
    _never_over(calls, WINDOW)
    assert not [c for c in calls if c.get("compact")], "trimming calls no model"
    assert len(calls) == TURNS + 1
    async with await open_store(store_url) as store:
        steps = await store.steps("trimmed")
        events = [e for _, e in await store.events(0, kinds=["run.compacted"], subject="trimmed")]
    trims = [s for s in steps if s.kind == "compact"]
    assert trims and {s.name for s in trims} == {"trim"} and all(s.cost_usd == 0 for s in trims)
    assert len(events) == len(trims) and all(e.data["policy"] == "trim" for e in events)


async def test_the_fail_policy_ends_the_run_with_a_reason_naming_the_window(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "long", TURNS, window=WINDOW)
    store_url = f"sqlite:///{tmp_path}/j.db"
    result = await _run(store_url, _agent(script, context={"policy": "fail"}), "failing")
    assert result.status == "failed"
    reason = result.reason
    assert isinstance(reason, ContextFull)
    assert (reason.window, reason.policy) == (WINDOW, "fail")
    assert 0.8 * WINDOW < reason.tokens <= WINDOW
    assert f"{WINDOW}-token context window" in reason.detail
    assert exit_from_json(json.loads(json.dumps(reason.to_json()))) == reason
    _never_over(calls_made(script), WINDOW)
    async with await open_store(store_url) as store:
        timeline = await run_timeline(store, "failing")
    assert timeline.error is not None and f"{WINDOW}-token context window" in timeline.error


async def test_a_configured_window_overrides_the_models(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "long", 40, window=None)  # the script declares no window
    limit = ContextLimit(window=1200, keep_turns=2)
    result = await _run(f"sqlite:///{tmp_path}/j.db", _agent(script, context=limit), "configured")
    assert result.status == "succeeded", result.reason
    calls = calls_made(script)
    _never_over(calls, 1200)
    assert [c for c in calls if c.get("compact")]


async def test_with_fallback_models_the_smallest_window_among_them_is_kept(tmp_path: Path) -> None:
    primary = write_long_script(tmp_path, "primary", 60, window=None)  # declares no window
    fallback = write_long_script(tmp_path, "fallback", 60, window=2500)
    spec = _agent(primary, model=[f"scripted:{primary}", f"scripted:{fallback}"])
    result = await _run(f"sqlite:///{tmp_path}/j.db", spec, "fallbacks")
    assert result.status == "succeeded", result.reason
    calls = calls_made(primary)
    assert not calls_made(fallback), "the primary answered every step"
    assert [c for c in calls if c.get("compact")], "folded to fit the fallback's window"
    _never_over(calls, 2500)


async def test_a_last_turn_too_big_for_the_window_fails_the_run_instead_of_being_sent(tmp_path: Path) -> None:
    turns = [
        {"text": "first", "tool_calls": [call("lookup", topic="small")]},
        {"text": "second", "tool_calls": [call("lookup", topic="y" * 9000)]},
        {"text": "never reached"},
    ]
    script = write_script(tmp_path, "huge", turns)
    result = await _run(f"sqlite:///{tmp_path}/j.db", _agent(script, context={"window": 2000}), "huge")
    assert result.status == "failed"
    assert isinstance(result.reason, ContextFull) and result.reason.window == 2000
    assert "the recent turns alone do not fit" in result.reason.detail
    assert [c.get("turn") for c in calls_made(script)] == [0, 1], "no compaction was paid for in vain"


# -- the pure parts -----------------------------------------------------------------------------
def _conversation(rng: random.Random, turns: int) -> list[Message]:
    messages = [Message(role="user", text="the task")]
    for t in range(turns):
        calls = tuple(
            ToolCall(id=f"c{t}_{i}", name="lookup", arguments={"q": t}) for i in range(rng.randint(0, 3))
        )
        messages.append(Message(role="assistant", text="x" * rng.randint(0, 300), tool_calls=calls))
        messages.extend(
            Message(role="tool", text="r" * rng.randint(1, 400), tool_call_id=c.id) for c in calls
        )
        if rng.random() < 0.1:
            messages.append(Message(role="user", text="a nudge"))
    return messages


def _pairs_whole(messages: list[Message]) -> bool:
    """Every tool result follows the model answer that called it, and every call has its result."""
    open_calls: set[str] = set()
    for m in messages:
        if m.role == "assistant":
            if open_calls:
                return False
            open_calls = {c.id for c in m.tool_calls}
        elif m.role == "tool":
            if m.tool_call_id not in open_calls:
                return False
            open_calls.discard(m.tool_call_id)
    return not open_calls


@pytest.mark.parametrize("seed", range(40))
def test_a_fold_never_separates_a_tool_call_from_its_result(seed: int) -> None:
    rng = random.Random(seed)
    messages = _conversation(rng, rng.randint(1, 30))
    fold = plan_fold(messages, rng.randint(1, 6), rng.randint(0, 2000))
    if fold is None:
        return
    assert fold.task == messages[0]
    assert fold.kept and _pairs_whole([*fold.pinned, *fold.kept])
    assert fold.kept[0].role == "assistant"
    assert list(fold.kept) == messages[len(messages) - len(fold.kept) :], "the recent turns, verbatim"
    results = [m.tool_call_id for m in messages if m.role == "tool"]
    placed = [
        m.tool_call_id for part in (fold.folded, fold.pinned, fold.kept) for m in part if m.role == "tool"
    ]
    assert sorted(map(str, placed)) == sorted(map(str, results)), "each result in exactly one place"


def test_an_older_tool_result_the_recent_turns_still_quote_is_kept_verbatim() -> None:
    order = ToolCall(id="c1", name="create_order", arguments={"item": "desk"})
    other = ToolCall(id="c2", name="lookup", arguments={"q": "weather"})
    messages = [
        Message(role="user", text="Buy a desk, then confirm it."),
        Message(role="assistant", tool_calls=(order, other)),
        Message(role="tool", text="created order ORD-20931 for desk", tool_call_id="c1"),
        Message(role="tool", text="sunny and warm today", tool_call_id="c2"),
        *[
            m
            for i in range(6)
            for m in (
                Message(
                    role="assistant", text=f"working {i}", tool_calls=(ToolCall(f"w{i}", "lookup", {"q": i}),)
                ),
                Message(role="tool", text=f"nothing {i}", tool_call_id=f"w{i}"),
            )
        ],
        Message(role="assistant", tool_calls=(ToolCall("c9", "confirm", {"order": "ORD-20931"}),)),
        Message(role="tool", text="confirmed", tool_call_id="c9"),
    ]
    fold = plan_fold(messages, 2, 10_000)
    assert fold is not None
    assert [m.text for m in fold.pinned] == ["", "created order ORD-20931 for desk"]
    assert fold.pinned[0].tool_calls == (order,)
    assert "sunny and warm today" in [m.text for m in fold.folded]
    assert "ORD-20931" in handles("created order ORD-20931 for desk")
    assert handles("plain words only, nothing special here") == set()


def test_the_window_comes_from_config_then_the_model_then_the_price_data() -> None:
    class Declares:
        context_window = 5000

    assert resolve_window(ContextLimit(window=900), Declares(), "scripted:x") == 900
    assert resolve_window(ContextLimit(), Declares(), "scripted:x") == 5000
    assert resolve_window(ContextLimit(), object(), "anthropic:claude-sonnet-4-5") == 200_000
    assert resolve_window(ContextLimit(), object(), "openai:gpt-4o") == 128_000
    assert resolve_window(ContextLimit(), object(), "openai:my-local-llama") is None


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"policy": "shrink"}, "policy"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"window": 10}, "window"),
        ({"keep_turns": 0}, "keep_turns"),
    ],
)
def test_a_bad_context_limit_is_named(kw: dict[str, Any], named: str) -> None:
    with pytest.raises(SpecError, match=named):
        ContextLimit(**kw)


def test_the_context_limit_crosses_a_process_with_its_spec(tmp_path: Path) -> None:
    script = write_long_script(tmp_path, "s", 2, window=None)
    spec = _agent(script, context={"window": 4000, "policy": "trim"})
    assert spec.context == ContextLimit(window=4000, policy="trim")
    assert AgentSpec.from_json(json.loads(json.dumps(spec.to_json()))).context == spec.context
    assert AgentSpec.from_json(_agent(script, context=None).to_json()).context is None
    assert _agent(script).context == ContextLimit()
    with pytest.raises(SpecError, match="context"):
        _agent(script, context={"size": 1})
