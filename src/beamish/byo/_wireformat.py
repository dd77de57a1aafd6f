"""Reading model requests and responses off the wire, for the providers' HTTP APIs.

A durable client sees bytes, not a framework's objects. To budget, price and watch a call it needs
three things from them, which this module gets for the OpenAI Chat Completions and Responses APIs
and the Anthropic Messages API, plain JSON or server-sent events:

- before the call, an upper bound on its cost: the request body's size in bytes bounds its prompt
  tokens (no token is shorter than a byte) and its ``max_tokens`` the answer;
- after it, the usage (what it cost), the text and the tool calls (what the loop detector reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall, Usage

#: Default answer cap when a request names none (the providers' own defaults are no larger).
DEFAULT_MAX_TOKENS = 4096


def wire_format(method: str, path: str) -> str | None:
    """Which model API a request calls (``openai-chat``, ``openai-responses``, ``anthropic``), or
    None for anything else (listing models, files: passed through, not journaled)."""
    if method.upper() != "POST":
        return None
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai-chat"
    if path.endswith("/responses"):
        return "openai-responses"
    if path.endswith("/messages"):
        return "anthropic"
    return None


def provider_of(fmt: str) -> str:
    return "anthropic" if fmt == "anthropic" else "openai"


def bound_request(fmt: str, body: Any, raw: bytes) -> ModelRequest:
    """A request whose size bound is the body's: the budget reserves its worst case before the call."""
    keys = {
        "openai-chat": ("max_completion_tokens", "max_tokens"),
        "openai-responses": ("max_output_tokens",),
        "anthropic": ("max_tokens",),
    }[fmt]
    cap = DEFAULT_MAX_TOKENS
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                cap = value
                break
    text = raw.decode("utf-8", errors="replace")
    return ModelRequest(system="", messages=(Message(role="user", text=text),), max_tokens=cap)


def parse_response(fmt: str, content_type: str, text: str) -> ModelResponse:
    """Text, tool calls, usage and stop reason of a successful answer (streamed or not)."""
    streamed = "event-stream" in content_type
    if fmt == "anthropic":
        return _anthropic_stream(_events(text)) if streamed else _anthropic(json.loads(text))
    if fmt == "openai-responses":
        if streamed:
            final: dict[str, Any] = {}
            for data in _events(text):
                if data.get("type") in ("response.completed", "response.incomplete", "response.failed"):
                    final = data.get("response") or {}
            return _responses(final)
        return _responses(json.loads(text))
    return _chat_stream(_events(text)) if streamed else _chat(json.loads(text))


def _events(text: str) -> Iterator[dict[str, Any]]:
    """The JSON ``data:`` payloads of a server-sent event stream (``[DONE]`` and the rest skipped)."""
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue
        try:
            value = json.loads(data)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def _openai_usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    prompt = int(data.get("prompt_tokens", data.get("input_tokens", 0)) or 0)
    details = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
    cached = int(details.get("cached_tokens", 0) or 0) if isinstance(details, dict) else 0
    output = int(data.get("completion_tokens", data.get("output_tokens", 0)) or 0)
    return Usage(input_tokens=max(0, prompt - cached), output_tokens=output, cache_read_tokens=cached)


def _chat(data: dict[str, Any]) -> ModelResponse:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = tuple(
        ToolCall.parse(str(c.get("id", "")), str(c["function"]["name"]), c["function"].get("arguments"))
        for c in message.get("tool_calls") or ()
        if isinstance(c.get("function"), dict)
    )
    return ModelResponse(
        text=message.get("content") or "",
        tool_calls=calls,
        usage=_openai_usage(data.get("usage")),
        stop_reason=str(choice.get("finish_reason") or "stop"),
        model=str(data.get("model", "")),
    )


def _chat_stream(chunks: Iterator[dict[str, Any]]) -> ModelResponse:
    texts: list[str] = []
    slots: dict[int, dict[str, Any]] = {}
    usage, finish, model = Usage(), "stop", ""
    for chunk in chunks:
        model = str(chunk.get("model", model))
        if chunk.get("usage"):
            usage = _openai_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                texts.append(delta["content"])
            for part in delta.get("tool_calls") or ():
                slot = slots.setdefault(int(part.get("index", 0)), {"id": "", "name": "", "args": []})
                slot["id"] = part.get("id") or slot["id"]
                function = part.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["args"].append(function.get("arguments") or "")
            finish = choice.get("finish_reason") or finish
    calls = tuple(
        ToolCall.parse(s["id"] or f"call_{i}", s["name"], "".join(s["args"]))
        for i, s in sorted(slots.items())
    )
    return ModelResponse(text="".join(texts), tool_calls=calls, usage=usage, stop_reason=finish, model=model)


def _responses(data: dict[str, Any]) -> ModelResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in data.get("output") or ():
        if item.get("type") == "message":
            texts += [c.get("text", "") for c in item.get("content") or () if c.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            calls.append(
                ToolCall.parse(str(item.get("call_id", "")), str(item.get("name", "")), item.get("arguments"))
            )
    return ModelResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=_openai_usage(data.get("usage")),
        stop_reason=str(data.get("status") or "completed"),
        model=str(data.get("model", "")),
    )


def _anthropic_usage(data: Any, output: int | None = None) -> Usage:
    data = data if isinstance(data, dict) else {}
    return Usage(
        input_tokens=int(data.get("input_tokens", 0) or 0),
        output_tokens=int(output if output is not None else data.get("output_tokens", 0) or 0),
        cache_read_tokens=int(data.get("cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(data.get("cache_creation_input_tokens", 0) or 0),
    )


def _anthropic(data: dict[str, Any]) -> ModelResponse:
    blocks = data.get("content") or ()
    calls = tuple(
        ToolCall(id=str(b.get("id", "")), name=str(b.get("name", "")), arguments=dict(b.get("input") or {}))
        for b in blocks
        if b.get("type") == "tool_use"
    )
    return ModelResponse(
        text="".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
        tool_calls=calls,
        usage=_anthropic_usage(data.get("usage")),
        stop_reason=str(data.get("stop_reason") or "end_turn"),
        model=str(data.get("model", "")),
    )


def _anthropic_stream(events: Iterator[dict[str, Any]]) -> ModelResponse:
    texts: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    start: Any = {}
    output: int | None = None
    stop, model = "end_turn", ""
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            start, model = message.get("usage") or {}, str(message.get("model", ""))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                blocks[int(event.get("index", 0))] = {
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "args": [],
                }
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                texts.append(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta" and int(event.get("index", 0)) in blocks:
                blocks[int(event.get("index", 0))]["args"].append(delta.get("partial_json", ""))
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason") or stop
            output = int((event.get("usage") or {}).get("output_tokens", 0) or 0)
    calls = tuple(
        ToolCall.parse(str(b["id"]), str(b["name"]), "".join(b["args"]) or "{}")
        for _, b in sorted(blocks.items())
    )
    return ModelResponse(
        text="".join(texts),
        tool_calls=calls,
        usage=_anthropic_usage(start, output),
        stop_reason=stop,
        model=model,
    )


def with_nudge(fmt: str, body: Any, text: str) -> Any:
    """``body`` with ``text`` added as the user's latest words (the loop detector's nudge), or
    unchanged when its shape is not one this module knows."""
    if not isinstance(body, dict):
        return body
    key = "input" if fmt == "openai-responses" else "messages"
    turns = body.get(key)
    if not isinstance(turns, list):
        return body
    turns = list(turns)
    last = turns[-1] if turns else None
    if fmt == "anthropic" and isinstance(last, dict) and last.get("role") == "user":
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        turns[-1] = {**last, "content": [*blocks, {"type": "text", "text": text}]}
    else:
        turns.append({"role": "user", "content": text})
    return {**body, key: turns}
