"""The openai adapter drives the real ``openai`` SDK (Chat Completions) against a local server."""

from __future__ import annotations

import asyncio
import threading

import pytest

from beamish.agent._messages import Message, ModelRequest, ToolCall, ToolSchema, Usage
from beamish.agent.models._openai import OpenAIModel
from beamish.agent.models._registry import make_model
from beamish.agent.models._retry import RetryPolicy, complete_with_retries
from beamish.errors import ModelError, ModelServerError, ModelTimeout, ModelUnavailable, RateLimited

from ._clocks import RecordingClock
from ._wire import Reply, WireServer, openai_completion, openai_error, openai_stream

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
        max_tokens=128,
    )


def _model(server: WireServer, **kw: object) -> OpenAIModel:
    return OpenAIModel("gpt-test", api_key="sk-test", base_url=f"{server.url}/v1", **kw)  # type: ignore[arg-type]


async def test_streamed_text_and_tool_calls_come_back_with_cached_tokens_and_heartbeats() -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "total_tokens": 1230,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    calls = [("call_a", "weather", '{"city": "Oslo"}'), ("call_b", "weather", '{"city": "Rome"}')]
    async with WireServer() as server:
        events = openai_stream("Checking.", calls, usage=usage)
        server.queue(Reply(events=events))
        model = _model(server)
        beats: list[int] = []
        response = await model.complete(_request(), on_chunk=lambda: beats.append(1))
        await model.aclose()
    assert response.text == "Checking."
    assert response.tool_calls == (
        ToolCall("call_a", "weather", {"city": "Oslo"}),
        ToolCall("call_b", "weather", {"city": "Rome"}),
    )
    assert response.usage == Usage(input_tokens=176, output_tokens=30, cache_read_tokens=1024)
    assert response.stop_reason == "tool_use"
    assert len(beats) == len(events) - 1  # the [DONE] sentinel is not a chunk
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["max_completion_tokens"] == 128
    assert sent.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]


async def test_tool_turns_are_sent_as_assistant_tool_calls_and_tool_messages() -> None:
    history = (
        Message(role="user", text="Weather in Oslo?"),
        Message(role="assistant", tool_calls=(ToolCall("call_a", "weather", {"city": "Oslo"}),)),
        Message(role="tool", text="rain", tool_call_id="call_a"),
    )
    async with WireServer() as server:
        server.queue(Reply(events=openai_stream("Rain in Oslo.")))
        model = _model(server)
        response = await model.complete(_request(*history))
        await model.aclose()
    assert response.text == "Rain in Oslo."
    assert response.stop_reason == "end_turn"
    messages = server.requests[0].body["messages"]
    assert messages[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert messages[3] == {"role": "tool", "tool_call_id": "call_a", "content": "rain"}


async def test_non_streaming_completion_parses_tool_calls_and_usage() -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}
    async with WireServer() as server:
        server.queue(Reply(body=openai_completion("", [("call_z", "weather", '{"city": "Bergen"}')], usage)))
        model = _model(server, stream=False, max_tokens_param="max_tokens")
        response = await model.complete(_request())
        await model.aclose()
    assert response.tool_calls == (ToolCall("call_z", "weather", {"city": "Bergen"}),)
    assert response.usage == Usage(input_tokens=50, output_tokens=5)
    assert server.requests[0].body["max_tokens"] == 128


async def test_malformed_tool_call_arguments_are_recorded_on_the_call() -> None:
    async with WireServer() as server:
        server.queue(Reply(events=openai_stream("", [("call_a", "weather", "[1, 2]")])))
        model = _model(server)
        response = await model.complete(_request())
        await model.aclose()
    assert response.tool_calls[0].arguments_error is not None
    assert "JSON object" in response.tool_calls[0].arguments_error


async def test_429_carries_retry_after_and_is_waited_out_by_the_retry_layer() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(openai_error(429, {"retry-after": "4"}), Reply(events=openai_stream("ok")))
        model = _model(server)
        response = await complete_with_retries(model, _request(), clock=clock)
        server.queue(openai_error(429, {"retry-after": "9"}))
        with pytest.raises(RateLimited) as caught:
            await model.complete(_request())
        await model.aclose()
    assert response.text == "ok"
    assert clock.slept == [4.0]
    assert caught.value.retry_after_s == 9.0


async def test_500s_retry_with_a_bound_then_model_unavailable() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(openai_error(500), openai_error(503))
        model = _model(server)
        with pytest.raises(ModelUnavailable) as caught:
            await complete_with_retries(
                model, _request(), clock=clock, policy=RetryPolicy(max_attempts=2, jitter=0)
            )
        await model.aclose()
    assert isinstance(caught.value.__cause__, ModelServerError)
    assert caught.value.__cause__.status == 503
    assert len(server.requests) == 2


async def test_a_stalled_stream_is_a_timeout_that_the_retry_layer_retries() -> None:
    clock = RecordingClock()
    async with WireServer() as server:
        server.queue(
            Reply(events=openai_stream("slow answer"), stall_after=2), Reply(events=openai_stream("quick"))
        )
        model = _model(server, next_chunk_timeout_s=0.2)
        response = await complete_with_retries(model, _request(), clock=clock, policy=RetryPolicy(jitter=0))
        server.queue(Reply(events=openai_stream("x"), stall_after=0))
        with pytest.raises(ModelTimeout, match="first chunk"):
            await _model(server, first_chunk_timeout_s=0.2).complete(_request())
        await model.aclose()
    assert response.text == "quick"
    assert clock.slept == [1.0]


async def test_the_registry_builds_an_openai_model_that_reaches_a_compatible_server() -> None:
    async with WireServer() as server:
        server.queue(Reply(events=openai_stream("local hello")))
        model = make_model("openai:local-model", base_url=f"{server.url}/v1", api_key="none")
        assert model.name == "openai:local-model"
        response = await model.complete(_request())
        await model.aclose()
    assert response.text == "local hello"
    assert server.requests[0].body["model"] == "local-model"


async def test_non_streaming_completion_reads_cached_tokens_and_sends_tools_as_built() -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 20}}
    async with WireServer() as server:
        server.queue(Reply(body=openai_completion("Rain.", [], usage)))
        model = _model(server, stream=False)
        response = await model.complete(_request())
        await model.aclose()
    assert (response.text, response.stop_reason) == ("Rain.", "end_turn")
    assert response.usage == Usage(input_tokens=30, output_tokens=5, cache_read_tokens=20)
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers.get("authorization") == "Bearer sk-test"
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": WEATHER.description,
                "parameters": WEATHER.parameters,
            },
        }
    ]


@pytest.mark.parametrize("body", ["not a completion", {"id": "x", "choices": []}])
async def test_a_completion_without_choices_is_a_model_error(body: object) -> None:
    async with WireServer() as server:
        server.queue(Reply(body=body))
        model = _model(server, stream=False)
        with pytest.raises(ModelError, match="no choices"):
            await model.complete(_request())
        await model.aclose()


async def test_warming_builds_one_client_on_a_thread_that_the_first_calls_share() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 1}
    async with WireServer() as server:
        server.queue(*(Reply(body=openai_completion("ok", [], usage)) for _ in range(2)))
        model = _model(server, stream=False)
        built_on_loop: list[bool] = []
        new_client = model._new_client

        def counted(sdk: object) -> object:
            built_on_loop.append(threading.current_thread() is threading.main_thread())
            return new_client(sdk)

        model._new_client = counted  # type: ignore[method-assign]
        model.warm()
        answers = await asyncio.gather(model.complete(_request()), model.complete(_request()))
        await model.aclose()
    assert [a.text for a in answers] == ["ok", "ok"]
    assert built_on_loop == [False]  # one client, built off the loop
