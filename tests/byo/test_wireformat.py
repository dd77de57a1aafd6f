"""Reading usage, text and tool calls off each provider API's wire format, and the nudge's place.

The Responses API case goes through the real ``openai`` SDK and a durable client, so the parser
sees exactly what the SDK sent and got.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

import beamish
from agent._wire import Reply, WireServer, anthropic_message, anthropic_stream, sse
from beamish.agent._messages import ToolCall, Usage
from beamish.byo._wireformat import bound_request, parse_response, wire_format, with_nudge
from beamish.journal import open_store

from ._incontext import in_run

pytestmark = pytest.mark.timeout(30)


def _response(text: str, call: tuple[str, str, str] | None = None) -> dict[str, Any]:
    output: list[dict[str, Any]] = [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    ]
    if call is not None:
        output.append(
            {"type": "function_call", "id": "fc_1", "call_id": call[0], "name": call[1], "arguments": call[2]}
        )
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": "gpt-4o-mini",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 20},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 129,
        },
    }


def test_only_model_endpoints_are_journaled() -> None:
    assert wire_format("POST", "/v1/chat/completions") == "openai-chat"
    assert wire_format("POST", "/v1/responses") == "openai-responses"
    assert wire_format("POST", "/v1/messages") == "anthropic"
    assert wire_format("GET", "/v1/models") is None
    assert wire_format("POST", "/v1/files") is None


def test_the_budget_bound_is_the_body_size_and_the_requests_own_answer_cap() -> None:
    body = {"model": "m", "max_completion_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}
    raw = json.dumps(body).encode()
    bound = bound_request("openai-chat", body, raw)
    assert bound.max_tokens == 300
    assert bound.messages[0].text.encode() == raw
    assert bound_request("anthropic", {"max_tokens": 50}, b"{}").max_tokens == 50
    assert bound_request("openai-responses", {}, b"{}").max_tokens == 4096


def test_anthropic_answers_are_read_streamed_and_whole() -> None:
    events = anthropic_stream("", [("tu_1", "lookup", '{"topic": "x"}')], output_tokens=12)
    streamed = parse_response("anthropic", "text/event-stream", b"".join(events).decode())
    assert streamed.tool_calls == (ToolCall("tu_1", "lookup", {"topic": "x"}),)
    assert streamed.usage == Usage(input_tokens=11, output_tokens=12)
    whole = anthropic_message("hi", [], {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 3})
    parsed = parse_response("anthropic", "application/json", json.dumps(whole))
    assert (parsed.text, parsed.usage) == ("hi", Usage(input_tokens=5, output_tokens=2, cache_read_tokens=3))


def test_a_streamed_responses_answer_is_read_from_its_completed_event() -> None:
    stream = sse({"type": "response.created", "response": {}}) + sse(
        {"type": "response.completed", "response": _response("done", ("c1", "publish", '{"text": "t"}'))}
    )
    parsed = parse_response("openai-responses", "text/event-stream", stream.decode())
    assert parsed.text == "done"
    assert parsed.tool_calls == (ToolCall("c1", "publish", {"text": "t"}),)
    assert parsed.usage == Usage(input_tokens=100, output_tokens=9, cache_read_tokens=20)


def test_a_nudge_is_the_users_latest_words_in_each_format() -> None:
    chat = with_nudge("openai-chat", {"messages": [{"role": "user", "content": "a"}]}, "stop")
    assert chat["messages"][-1] == {"role": "user", "content": "stop"}
    tool_results = {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]}
    anthropic = with_nudge("anthropic", tool_results, "stop")
    assert len(anthropic["messages"]) == 1, "Anthropic wants one user turn: the nudge joins it"
    assert anthropic["messages"][0]["content"][-1] == {"type": "text", "text": "stop"}
    responses = with_nudge("openai-responses", {"input": "just text"}, "stop")
    assert responses == {"input": "just text"}, "an input it cannot extend is left alone"


async def test_a_responses_api_call_through_the_sdk_is_journaled_priced_and_replayed(tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex
    async with WireServer() as server, await open_store(f"sqlite:///{tmp_path}/j.db") as store:
        server.queue(Reply(body=_response("hello from responses")))
        client = beamish.durable(openai.AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0))
        for _ in range(2):  # the second time is a restarted run: answered from the journal
            async with in_run(store, run_id):
                answer = await client.responses.create(model="gpt-4o-mini", input="hi")
                assert answer.output_text == "hello from responses"
        assert len(server.requests) == 1
        (step,) = await store.steps(run_id)
    assert (step.kind, step.name, step.tokens_in, step.tokens_out) == ("llm", "openai:gpt-4o-mini", 120, 9)
