"""Compaction through the real ``anthropic`` and ``openai`` SDKs against a local server speaking
their wire formats: neither SDK counts tokens offline, so the agent estimates; when the provider
refuses a request as too long anyway, the agent folds the conversation with a summary from the same
model and the run goes on. A refusal with nothing older to fold ends the run with ``ContextFull``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, ContextFull, ContextLimit
from beamish.agent._context import COMPACT_SYSTEM, SUMMARY_PREFIX
from beamish.agent._runs import runs_of
from beamish.agent.models._retry import RetryPolicy
from beamish.journal import open_store
from beamish.runtime import Backoff, Node, SupervisorSpec

from . import fixture_tools as ft
from ._wire import Reply, WireServer, anthropic_stream, openai_stream

pytestmark = pytest.mark.timeout(30)

NO_WAIT = RetryPolicy(max_attempts=3, backoff_min_s=0, backoff_max_s=0, jitter=0, default_retry_after_s=0)
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}
TOO_LONG = {
    "anthropic": "prompt is too long: 1000 tokens > 900 maximum",
    "openai": "This model's maximum context length is 900 tokens. "
    "However, your messages resulted in 1000 tokens.",
}


def _too_long(provider: str) -> Reply:
    error = {"type": "invalid_request_error", "message": TOO_LONG[provider]}
    body: dict[str, Any] = (
        {"type": "error", "error": error}
        if provider == "anthropic"
        else {"error": {**error, "param": "messages", "code": "context_length_exceeded"}}
    )
    return Reply(status=400, body=body)


def _answer(provider: str, text: str, call: tuple[str, str, str] | None = None) -> Reply:
    calls = [call] if call else []
    events = anthropic_stream(text, calls) if provider == "anthropic" else openai_stream(text, calls)
    return Reply(events=events)


def _spec(provider: str, server: WireServer, context: ContextLimit) -> AgentSpec:
    base = server.url if provider == "anthropic" else f"{server.url}/v1"
    return AgentSpec(
        "writer",
        "Write briefly.",
        f"{provider}:{MODELS[provider]}",
        [ft.lookup],
        isolation="task",
        retry=NO_WAIT,
        max_tokens=256,
        backoff=Backoff(min_s=0.01, max_s=0.01, jitter=0),
        model_options={"base_url": base, "api_key": "test-key"},
        context=context,
    )


def _system(provider: str, body: dict[str, Any]) -> str:
    if provider == "anthropic":
        system = body.get("system")
        return system if isinstance(system, str) else "".join(b.get("text", "") for b in system or [])
    first = body["messages"][0]
    return str(first["content"]) if first["role"] == "system" else ""


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_refusal_for_length_folds_the_conversation_and_the_run_goes_on(
    tmp_path: Path, provider: str
) -> None:
    async with WireServer() as server:
        server.queue(
            *[
                _answer(provider, f"Looking up {t}.", (f"call_{t}", "lookup", json.dumps({"topic": t})))
                for t in "abc"
            ],
            _too_long(provider),
            _answer(provider, "The agent looked up a and b; both are facts."),
            _answer(provider, "Done."),
        )
        store_url = f"sqlite:///{tmp_path}/j.db"
        async with Node(store=store_url) as node:
            limit = ContextLimit(window=8000, keep_turns=1)
            await node.start_supervisor(SupervisorSpec([_spec(provider, server, limit).child_spec()]))
            result = await node.result(
                await node.submit("writer", "Look up a, b and c.", run_id="w"), timeout=20
            )
    assert result.status == "succeeded", result.reason
    assert result.output == "Done."
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 6
    assert _system(provider, bodies[4]) == COMPACT_SYSTEM, "the fold is a call to the same model"
    assert json.dumps(bodies[3]) != json.dumps(bodies[5])
    last = json.dumps(bodies[5])
    assert SUMMARY_PREFIX.strip()[:40] in last and "Look up a, b and c." in last and "call_c" in last
    assert "call_a" not in last, "the older turns were folded into the summary"
    async with await open_store(store_url) as store:
        events = [e.data for _, e in await store.events(0, kinds=["run.compacted"], subject="w")]
        steps = await store.steps("w")
    assert [e["why"] for e in events] == ["provider_refused"] and events[0]["scale"] > 1
    assert [s.kind for s in steps].count("compact") == 1


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_refusal_for_length_with_nothing_older_to_fold_ends_the_run_with_context_full(
    tmp_path: Path, provider: str
) -> None:
    async with WireServer() as server:
        server.queue(_too_long(provider), _answer(provider, "Next run done."))
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            spec = _spec(provider, server, ContextLimit())
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            agent = runs_of(node).refs["writer"]
            refused = await node.result(await node.submit("writer", "Draft."), timeout=10)
            sent = len(server.requests)
            after = await node.result(await node.submit("writer", "Again."), timeout=10)
            assert runs_of(node).refs["writer"] is agent and agent.alive, "the agent was not restarted"
    assert refused.status == "failed"
    assert isinstance(refused.reason, ContextFull)
    assert refused.reason.window == (200_000 if provider == "anthropic" else 128_000)
    assert TOO_LONG[provider] in refused.reason.detail and "nothing older" in refused.reason.detail
    assert sent == 1, "a refusal is not retried"
    assert after.status == "succeeded" and after.output == "Next run done."
