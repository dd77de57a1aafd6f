"""The anthropic adapter drives the real ``anthropic`` SDK against a local server speaking its wire format."""

from __future__ import annotations

import json

import pytest

from beamish.agent._messages import Message, ModelRequest, ToolCall, ToolSchema, Usage
from beamish.agent.models._anthropic import AnthropicModel
from beamish.agent.models._retry import RetryPolicy, complete_with_retries
from beamish.errors import ModelServerError, ModelTimeout, ModelUnavailable, RateLimited

from ._clocks import RecordingClock
from ._wire import Reply, WireServer, anthropic_error, anthropic_message, anthropic_stream, sse

pytestmark = pytest.mark.timeout(20)

WEATHER = ToolSchema(
    name="weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _request(*messages: Message) -> ModelRequest:
    return ModelRequest(
        system="You are terse.",
        messages=messages or (Message(role="user", text="Weather in Oslo?"),),
        tools=(WEATHER,),
        max_tokens=256,
    )


def _model(server: WireServer, **kw: object) -> AnthropicModel:
    return AnthropicModel("claude-test", api_key="test-key", base_url=server.url, **kw)  # type: ignore[arg-type]


async def test_streamed_text_and_tool_call_come_back_with_cache_usage_and_a_heartbeat_per_chunk() -> None:
    async with WireServer() as server:
        usage = {"input_tokens": 12, "cache_creation_input_tokens": 40, "cache_read_input_tokens": 300}
        events = anthropic_stream("Let me check.", [("toolu_1", "weather", '{"city": "Oslo"}')], usage=usage)
        server.queue(Reply(events=events))
        model = _model(server)
        beats: list[int] = []
        response = await model.complete(_request(), on_chunk=lambda: beats.append(1))
        await model.aclose()
    assert response.text == "Let me check."
    assert response.tool_calls == (ToolCall(id="toolu_1", name="weather", arguments={"city": "Oslo"}),)
    assert response.usage == Usage(
        input_tokens=12, output_tokens=7, cache_read_tokens=300, cache_write_tokens=40
    )
    assert response.stop_reason == "tool_use"
    assert response.model == "anthropic:claude-test"
    assert len(beats) == len(events)
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    auth = sent.headers.get("x-api-key") or sent.headers.get("authorization", "")
    assert auth.endswith("test-key")
    assert sent.body["stream"] is True
    assert sent.body["system"] == "You are terse."
    assert sent.body["cache_control"] == {"type": "ephemeral"}, "the conversation prefix is cached"
    assert sent.body["tools"] == [
        {"name": "weather", "description": "Weather for a city.", "input_schema": WEATHER.parameters}
    ]


async def test_tool_results_are_sent_as_one_user_turn_of_tool_result_blocks() -> None:
    calls = (
        ToolCall("toolu_1", "weather", {"city": "Oslo"}),
        ToolCall("toolu_2", "weather", {"city": "Rome"}),
    )
    history = (
        Message(role="user", text="Weather in Oslo and Rome?"),
        Message(role="assistant", text="", tool_calls=calls),
        Message(role="tool", text="rain", tool_call_id="toolu_1"),
        Message(role="tool", text="no such city", tool_call_id="toolu_2", is_error=True),
    )
    async with WireServer() as server:
        server.queue(Reply(events=anthropic_stream("Oslo: rain.")))
        model = _model(server)
        response = await model.complete(_request(*history))
        await model.aclose()
    assert response.text == "Oslo: rain."
    assert response.tool_calls == ()
    messages = server.requests[0].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain", "is_error": False},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such city", "is_error": True},
        ],
    }


async def test_non_streaming_path_parses_tool_use_and_usage() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 9,
        "cache_creation_input_tokens": 1,
        "cache_read_input_tokens": 2,
    }
    async with WireServer() as server:
        server.queue(Reply(body=anthropic_message("ok", [("toolu_9", "weather", {"city": "Bergen"})], usage)))
        model = _model(server, stream=False)
        beats: list[int] = []
        response = await model.complete(_request(), on_chunk=lambda: beats.append(1))
        await model.aclose()
    assert response.tool_calls == (ToolCall("toolu_9", "weather", {"city": "Bergen"}),)
    assert response.usage == Usage(5, 9, cache_read_tokens=2, cache_write_tokens=1)
    assert beats == [1]
    assert "stream" not in server.requests[0].body


async def test_a_malformed_tool_call_is_recorded_not_raised() -> None:
    async with WireServer() as server:
        server.queue(Reply(events=anthropic_stream("", [("toolu_1", "weather", '{"city": "Os')])))
        model = _model(server)
        response = await model.complete(_request())
        await model.aclose()
    (call,) = response.tool_calls
    assert call.name == "weather"
    assert call.arguments == {}
    assert call.arguments_error is not None and "not valid JSON" in call.arguments_error


async def test_429_raises_rate_limited_with_the_retry_after_of_the_response() -> None:
    async with WireServer() as server:
        server.queue(anthropic_error(429, "rate_limit_error", {"retry-after": "7"}))
        model = _model(server)
        with pytest.raises(RateLimited) as caught:
            await model.complete(_request())
        await model.aclose()
    assert caught.value.retry_after_s == 7.0
    assert len(server.requests) == 1, "the SDK's own retries are off"


async def test_429_is_waited_out_and_then_the_call_succeeds() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(
            anthropic_error(429, "rate_limit_error", {"retry-after": "3"}),
            anthropic_error(429, "rate_limit_error", {"retry-after-ms": "1500"}),
            Reply(events=anthropic_stream("done")),
        )
        model = _model(server)
        waits: list[tuple[str, float]] = []
        response = await complete_with_retries(
            model, _request(), clock=clock, on_wait=lambda kind, s, _e: waits.append((kind, s))
        )
        await model.aclose()
    assert response.text == "done"
    assert clock.slept == [3.0, 1.5]
    assert waits == [("rate_limited", 3.0), ("rate_limited", 1.5)]


async def test_500_then_success_is_retried_with_backoff() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(anthropic_error(500, "api_error"), Reply(events=anthropic_stream("fine")))
        model = _model(server)
        policy = RetryPolicy(backoff_min_s=2.0, jitter=0.0)
        response = await complete_with_retries(model, _request(), clock=clock, policy=policy)
        await model.aclose()
    assert response.text == "fine"
    assert clock.slept == [2.0]


async def test_persistent_500s_end_in_model_unavailable_after_the_bound() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(*(anthropic_error(500, "api_error") for _ in range(3)))
        model = _model(server)
        policy = RetryPolicy(max_attempts=3, backoff_min_s=1.0, jitter=0.0)
        with pytest.raises(ModelUnavailable) as caught:
            await complete_with_retries(model, _request(), clock=clock, policy=policy)
        await model.aclose()
    assert isinstance(caught.value.__cause__, ModelServerError)
    assert len(server.requests) == 3
    assert clock.slept == [1.0, 2.0]


async def test_an_overloaded_error_inside_the_stream_is_a_server_error() -> None:
    async with WireServer() as server:
        events = anthropic_stream("partial")[:2]
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
        events.append(sse(error, "error"))
        server.queue(Reply(events=events))
        model = _model(server)
        with pytest.raises(ModelServerError):
            await model.complete(_request())
        await model.aclose()


async def test_a_stream_that_stalls_after_some_chunks_times_out_on_the_next_chunk() -> None:
    async with WireServer() as server:
        server.queue(Reply(events=anthropic_stream("hello there"), stall_after=3))
        model = _model(server, next_chunk_timeout_s=0.2)
        with pytest.raises(ModelTimeout, match=r"no next chunk within 0\.2s"):
            await model.complete(_request())
        await model.aclose()


async def test_a_stream_that_never_starts_times_out_on_the_first_chunk() -> None:
    async with WireServer() as server:
        server.queue(Reply(events=anthropic_stream("hello"), stall_after=0))
        model = _model(server, first_chunk_timeout_s=0.2)
        with pytest.raises(ModelTimeout, match="no first chunk"):
            await model.complete(_request())
        await model.aclose()


async def test_the_request_round_trips_through_json_with_a_stable_fingerprint() -> None:
    request = _request(Message(role="user", text="hi"))
    again = type(request).from_json(json.loads(json.dumps(request.to_json())))
    assert again == request
    assert again.fingerprint() == request.fingerprint()
