"""A successful answer's rate-limit headers are learned before the provider has to say 429: OpenAI's
``x-ratelimit-*`` and Anthropic's ``anthropic-ratelimit-*``, read through the real SDKs from a local
server speaking their wire formats; a used-up allowance holds every agent of the store until its
reset (on the injected clock), and missing or malformed headers change nothing. A 429 without
``Retry-After`` waits for the reset its rate-limit headers name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish import AgentSpec
from beamish.agent._messages import Message, ModelRequest, RateHint
from beamish.agent.models._errors import MAX_RESET_S, rate_hint, reset_seconds
from beamish.agent.models._registry import make_model
from beamish.agent.models._retry import RetryPolicy
from beamish.errors import RateLimited
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock, settle, wait_for

from ._wire import Reply, WireServer, anthropic_message, anthropic_stream, openai_completion, openai_stream

pytestmark = pytest.mark.timeout(30)

#: The fake clock's wall time at its start: 2026-01-01T00:00:00Z.
T0 = FakeClock().time()
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}
NO_WAIT = RetryPolicy(max_attempts=2, backoff_min_s=0, backoff_max_s=0, jitter=0, default_retry_after_s=0)


def _used_up(provider: str, reset_s: int = 2) -> dict[str, str]:
    """Headers saying the request allowance is used up and whole again in ``reset_s`` seconds."""
    if provider == "openai":
        return {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{reset_s}s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "400ms",
        }
    return {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": f"2026-01-01T00:00:0{reset_s}Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:01Z",
    }


def _answer(provider: str, text: str, headers: dict[str, str], *, stream: bool = True) -> Reply:
    if provider == "anthropic":
        usage = {"input_tokens": 5, "output_tokens": 2}
        if stream:
            return Reply(events=anthropic_stream(text), headers=headers)
        return Reply(body=anthropic_message(text, [], usage), headers=headers)
    if stream:
        return Reply(events=openai_stream(text), headers=headers)
    return Reply(
        body=openai_completion(text, [], {"prompt_tokens": 5, "completion_tokens": 2}), headers=headers
    )


def _base(provider: str, server: WireServer) -> str:
    return server.url if provider == "anthropic" else f"{server.url}/v1"


# -- reading the headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("7.66s", 7.66),
        ("2", 2.0),
        ("2026-01-01T00:00:02Z", 2.0),
        ("2026-01-01T01:00:30+01:00", 30.0),
        ("2025-12-31T23:59:00Z", 0.0),  # already past: no wait
        ("400h", MAX_RESET_S),  # longer than a day is not believed
    ],
)
def test_a_reset_is_read_as_a_duration_seconds_or_an_rfc_3339_time(value: str, seconds: float) -> None:
    assert reset_seconds(value, now=T0) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-1s", "1x", "5 minutes", "nan", "inf", "s", "2026-13-01"]
)
def test_a_reset_that_does_not_parse_is_none(value: str | None) -> None:
    assert reset_seconds(value, now=T0) is None


def test_openais_headers_give_remaining_reset_and_limit_of_requests_and_tokens() -> None:
    hint = rate_hint(_used_up("openai"), now=T0)
    assert hint == RateHint(
        requests_remaining=0,
        requests_reset_s=2.0,
        requests_limit=60,
        tokens_remaining=149000,
        tokens_reset_s=0.4,
        tokens_limit=150000,
    )
    assert hint.blocked_for_s == 2.0


def test_anthropics_tightest_token_kind_speaks_for_its_tokens() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
        "anthropic-ratelimit-tokens-remaining": "30000",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:03Z",
        "anthropic-ratelimit-input-tokens-limit": "20000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:09Z",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:02Z",
    }
    hint = rate_hint(headers, now=T0)
    assert hint is not None
    assert (hint.requests_remaining, hint.requests_reset_s) == (49, 1.0)
    assert (hint.tokens_remaining, hint.tokens_reset_s, hint.tokens_limit) == (0, 9.0, 20000)
    assert hint.blocked_for_s == 9.0, "the used-up input tokens hold every call until they are back"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"content-type": "application/json"},
        {"x-ratelimit-remaining-requests": "none", "x-ratelimit-reset-requests": "2s"},
        {"x-ratelimit-remaining-requests": "-3", "x-ratelimit-reset-requests": "2s"},
        {"anthropic-ratelimit-requests-remaining": "", "anthropic-ratelimit-requests-reset": "soon"},
    ],
)
def test_no_or_malformed_headers_give_no_hint(headers: dict[str, str] | None) -> None:
    assert rate_hint(headers, now=T0) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining-requests": "0"},  # used up, but not said until when
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "tomorrow"},
        {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "2s"},  # room left
        {
            "anthropic-ratelimit-tokens-remaining": "1",
            "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:05Z",
        },
    ],
)
def test_an_allowance_with_room_or_without_a_reset_blocks_nothing(headers: dict[str, str]) -> None:
    hint = rate_hint(headers, now=T0)
    assert hint is not None and hint.blocked_for_s is None


# -- through the real SDKs ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "unstreamed"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_the_adapters_hand_the_headers_of_a_successful_answer_to_the_loop(
    provider: str, stream: bool
) -> None:
    request = ModelRequest(system="", messages=(Message(role="user", text="hi"),), max_tokens=16)
    async with WireServer() as server:
        server.queue(_answer(provider, "first", _used_up(provider), stream=stream))
        server.queue(_answer(provider, "second", {}, stream=stream))
        model = make_model(
            f"{provider}:{MODELS[provider]}",
            base_url=_base(provider, server),
            api_key="test-key",
            stream=stream,
            clock=FakeClock(),
        )
        first = await model.complete(request)
        second = await model.complete(request)
        await model.aclose()
    assert (first.text, second.text) == ("first", "second")
    assert first.rate_hint is not None
    assert (first.rate_hint.requests_remaining, first.rate_hint.requests_reset_s) == (0, 2.0)
    assert first.rate_hint.blocked_for_s == 2.0
    assert second.rate_hint is None, "no headers, no hint"
    assert "rate_hint" not in first.to_json(), "a replayed answer has no headers: the hint is not journaled"


# -- in the loop: every agent of the store waits -----------------------------------------------------


def _spec(name: str, provider: str, server: WireServer, clock: FakeClock) -> AgentSpec:
    return AgentSpec(
        name,
        "Answer briefly.",
        f"{provider}:{MODELS[provider]}",
        [],
        isolation="task",
        retry=NO_WAIT,
        model_options={"base_url": _base(provider, server), "api_key": "test-key", "clock": clock},
    )


async def _blocks(url: str, clock: FakeClock) -> list[dict[str, Any]]:
    store = await open_store(url, clock=clock)
    try:
        rows = await store.fetchall("SELECT key, blocked_until FROM rate_limits WHERE blocked_until > 0")
    finally:
        await store.close()
    return [dict(r) for r in rows]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_used_up_allowance_holds_every_agent_of_the_store_until_its_reset(
    tmp_path: Path, provider: str
) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/j.db"
    async with WireServer() as server:
        server.queue(
            _answer(provider, "first", _used_up(provider, reset_s=2)), _answer(provider, "second", {})
        )
        async with Node(store=url, clock=clock) as node:
            specs = [_spec(name, provider, server, clock) for name in ("support", "billing")]
            await node.start_supervisor(SupervisorSpec([s.child_spec() for s in specs]))
            first = await node.result(await node.submit("support", "Hello."), timeout=10)
            assert first.status == "succeeded" and first.output == "first"
            assert await _blocks(url, clock) == [
                {"key": f"{provider}:{MODELS[provider]}", "blocked_until": pytest.approx(T0 + 2.0)}
            ]
            run_id = await node.submit("billing", "Invoice?")  # another agent, same model, same store
            await wait_for(lambda: clock.next_deadline() == 2.0, what="the other agent to wait for the reset")
            assert len(server.requests) == 1, "nothing is sent before the reset"
            clock.advance(1.9)
            await settle()
            assert len(server.requests) == 1, "still nothing 0.1 s before the reset"
            clock.advance(0.1)
            second = await node.result(run_id, timeout=10)
    assert second.status == "succeeded" and second.output == "second"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ratelimit-remaining-requests": "zero", "x-ratelimit-reset-requests": "2s"},
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "later"},
        {"anthropic-ratelimit-requests-remaining": "0"},
        {
            "anthropic-ratelimit-requests-remaining": "-1",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:02Z",
        },
        {"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "2s"},
    ],
    ids=["none", "remaining-not-a-number", "reset-not-a-time", "no-reset", "negative", "room-left"],
)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_no_or_malformed_headers_change_nothing(
    tmp_path: Path, provider: str, headers: dict[str, str]
) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/j.db"
    async with WireServer() as server:
        server.queue(_answer(provider, "first", headers), _answer(provider, "second", headers))
        async with Node(store=url, clock=clock) as node:
            specs = [_spec(name, provider, server, clock) for name in ("support", "billing")]
            await node.start_supervisor(SupervisorSpec([s.child_spec() for s in specs]))
            first = await node.result(await node.submit("support", "Hello."), timeout=10)
            second = await node.result(await node.submit("billing", "Invoice?"), timeout=10)
            assert await _blocks(url, clock) == []
    assert (first.output, second.output) == ("first", "second")
    assert clock.monotonic() == 0.0, "the second call did not wait"


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}, 3.0),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30s"}, 90.0),
        ({"retry-after": "5", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}, 5),
        ({"x-ratelimit-remaining-requests": "4", "x-ratelimit-reset-requests": "3s"}, None),
        ({}, None),
    ],
    ids=["requests", "tokens", "retry-after-wins", "room-left", "none"],
)
async def test_a_429_without_retry_after_waits_for_the_reset_its_headers_name(
    headers: dict[str, str], wait: float | None
) -> None:
    request = ModelRequest(system="", messages=(Message(role="user", text="hi"),), max_tokens=16)
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    async with WireServer() as server:
        server.queue(Reply(status=429, body=body, headers=headers))
        model = make_model("openai:gpt-4o-mini", base_url=f"{server.url}/v1", api_key="test-key")
        with pytest.raises(RateLimited) as caught:
            await model.complete(request)
        await model.aclose()
    assert caught.value.retry_after_s == wait
