"""A provider's error answers, through the real ``anthropic`` and ``openai`` SDKs and a local server
speaking their wire formats: a client error (a 4xx other than 408, 409 and 429) fails the run at once
with the provider's message, with no retry and no restart of the agent; 408, 409 and 429 are
transient and tried again; a model that stays down is a crash, which ``on_crash`` decides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec, Policy
from beamish.agent._runs import runs_of
from beamish.agent.models._retry import RetryPolicy
from beamish.runtime import Backoff, Node, SupervisorSpec

from ._wire import Reply, WireServer, anthropic_stream, openai_stream

pytestmark = pytest.mark.timeout(30)

#: Retries without waiting, so a test counts attempts, not seconds.
NO_WAIT = RetryPolicy(max_attempts=3, backoff_min_s=0, backoff_max_s=0, jitter=0, default_retry_after_s=0)
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}  # priced by the bundled catalogue


def _error(
    provider: str, status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """An error answer with the body each provider (or a server compatible with it) sends."""
    error = {"type": kind, "message": message}
    body: dict[str, Any] = (
        {"type": "error", "error": error}
        if provider == "anthropic"
        else {"error": {**error, "param": None, "code": None}}
    )
    return Reply(status=status, body=body, headers=headers or {})


def _answer(provider: str, text: str) -> Reply:
    return Reply(events=anthropic_stream(text) if provider == "anthropic" else openai_stream(text))


def _spec(provider: str, server: WireServer, **kw: Any) -> AgentSpec:
    base = server.url if provider == "anthropic" else f"{server.url}/v1"
    return AgentSpec(
        "writer",
        "Write briefly.",
        f"{provider}:{MODELS[provider]}",
        [],
        isolation="task",
        retry=NO_WAIT,
        backoff=Backoff(min_s=0.01, max_s=0.01, jitter=0),
        model_options={"base_url": base, "api_key": "test-key"},
        **kw,
    )


CLIENT_ERRORS = [
    # ("prompt is too long" is the context window's business: tests/agent/test_context_wire.py)
    ("anthropic", 400, "invalid_request_error", "messages: roles must alternate"),
    ("anthropic", 401, "authentication_error", "invalid x-api-key"),
    ("anthropic", 404, "not_found_error", "model: claude-haiku-4-5"),
    ("openai", 400, "invalid_request_error", "Unsupported parameter: 'max_tokens'"),
    # servers compatible with OpenAI's API that type every error but a 400 or 404 as "api_error"
    ("openai", 401, "api_error", "unauthorized"),
    ("openai", 413, "api_error", "request body too large"),
]


@pytest.mark.parametrize(("provider", "status", "kind", "message"), CLIENT_ERRORS)
async def test_a_client_error_fails_the_run_at_once_with_the_providers_message(
    tmp_path: Path, provider: str, status: int, kind: str, message: str
) -> None:
    async with WireServer() as server:
        server.queue(_error(provider, status, kind, message), _answer(provider, "Next run done."))
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            await node.start_supervisor(SupervisorSpec([_spec(provider, server).child_spec()]))
            registry = runs_of(node)
            agent = registry.refs["writer"]
            refused = await node.result(await node.submit("writer", "Draft."), timeout=10)
            sent = len(server.requests)
            after = await node.result(await node.submit("writer", "Again."), timeout=10)
            assert registry.refs["writer"] is agent and agent.alive, "the agent was not restarted"
    assert refused.status == "failed"
    assert refused.reason is not None and refused.reason.kind == "crashed"
    assert refused.reason.error_type == "ModelRejected"  # type: ignore[attr-defined]
    assert f"({status} {kind}): {message}" in refused.reason.message  # type: ignore[attr-defined]
    assert sent == 1, "a client error is not retried"
    assert after.status == "succeeded" and after.output == "Next run done."


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize(
    ("status", "kind"), [(408, "request_timeout"), (409, "conflict"), (429, "rate_limit_error")]
)
async def test_408_409_and_429_are_transient_and_the_call_is_tried_again(
    tmp_path: Path, provider: str, status: int, kind: str
) -> None:
    async with WireServer() as server:
        server.queue(
            _error(provider, status, kind, "try again", {"retry-after": "0"}), _answer(provider, "Done.")
        )
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            await node.start_supervisor(SupervisorSpec([_spec(provider, server).child_spec()]))
            agent = runs_of(node).refs["writer"]
            done = await node.result(await node.submit("writer", "Draft."), timeout=10)
            assert runs_of(node).refs["writer"] is agent
    assert done.status == "succeeded" and done.output == "Done."
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("action", "status", "restarted"),
    [("stop", "failed", False), ("pause", "paused", False), ("restart", "succeeded", True)],
)
async def test_on_crash_decides_what_a_model_that_stays_down_does_to_the_run(
    tmp_path: Path, action: str, status: str, restarted: bool
) -> None:
    provider = "anthropic"
    async with WireServer() as server:
        down = [_error(provider, code, "api_error", "upstream down") for code in (500, 502, 503)]
        server.queue(*down, _answer(provider, "Done."))
        spec = _spec(provider, server, policy=Policy(on_crash=action))  # type: ignore[arg-type]
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            registry = runs_of(node)
            agent = registry.refs["writer"]
            first = await node.result(await node.submit("writer", "Draft."), timeout=10)
            assert (registry.refs["writer"] is not agent) is restarted
            assert len(server.requests) == (4 if restarted else 3)
            if action == "stop":  # the run is over; the agent takes its next one
                later = await node.result(await node.submit("writer", "Again."), timeout=10)
            elif action == "pause":  # the run waits for resume, then goes on
                assert await node.resume("writer") == 1
                later = await node.result(first.run_id, timeout=10)
            else:
                later = first
    assert first.status == status
    if not restarted:
        assert first.reason is not None and first.reason.error_type == "ModelUnavailable"  # type: ignore[attr-defined]
    assert later.status == "succeeded" and later.output == "Done."
