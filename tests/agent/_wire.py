"""A tiny HTTP/1.1 server on 127.0.0.1 that speaks the Anthropic and OpenAI wire formats.

Provider tests point the real SDKs at it: the SDK builds real requests, parses real SSE streams and
real error bodies, and nothing leaves the machine. Each test queues the replies it wants (a stream,
a JSON body, an error with headers, a stream that stalls) and reads back the requests it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: SSE events (already framed) sent as a chunked stream; ``stall_after`` stops after that many.
    events: list[bytes] | None = None
    stall_after: int | None = None


class WireServer:
    """Serves queued replies in order, one per request, and records every request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[WireRequest] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._forever = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> WireServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = json.loads(raw) if raw else None
            self.requests.append(WireRequest(method, path, headers, body))
            reply = (
                self.replies.pop(0) if self.replies else Reply(status=500, body={"error": "no reply queued"})
            )
            await self._write(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _write(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 400: "Bad Request"}
        status_line = f"HTTP/1.1 {reply.status} {reason.get(reply.status, 'Status')}\r\n"
        headers = {"connection": "close", **reply.headers}
        if reply.events is None:
            payload = json.dumps(reply.body).encode()
            headers.setdefault("content-type", "application/json")
            headers["content-length"] = str(len(payload))
            writer.write((status_line + _fmt(headers) + "\r\n").encode() + payload)
            await writer.drain()
            return
        headers["content-type"] = "text/event-stream"
        headers["transfer-encoding"] = "chunked"
        writer.write((status_line + _fmt(headers) + "\r\n").encode())
        for i, event in enumerate(reply.events):
            if reply.stall_after is not None and i >= reply.stall_after:
                await self._forever.wait()
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
        if reply.stall_after is not None and reply.stall_after >= len(reply.events):
            await self._forever.wait()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _fmt(headers: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items())


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + f"data: {json.dumps(data)}\n\n").encode()


# --- Anthropic Messages API -------------------------------------------------------------------------


def anthropic_stream(
    text: str = "",
    tool_calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    *,
    usage: dict[str, int] | None = None,
    output_tokens: int = 7,
    stop_reason: str | None = None,
    model: str = "claude-test",
) -> list[bytes]:
    """A Messages stream: ``text`` in two deltas, then each (id, name, raw JSON) tool call in pieces."""
    usage = usage or {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    events = [
        sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
            "message_start",
        )
    ]
    index = 0
    if text:
        events.append(
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            )
        )
        half = len(text) // 2
        for part in (text[:half], text[half:]):
            events.append(
                sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": part},
                    },
                    "content_block_delta",
                )
            )
        events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        index = 1
    for call_id, name, raw in tool_calls:
        events.append(
            sse(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                },
                "content_block_start",
            )
        )
        half = len(raw) // 2
        for part in (raw[:half], raw[half:]):
            events.append(
                sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                    "content_block_delta",
                )
            )
        events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        index += 1
    stop = stop_reason or ("tool_use" if tool_calls else "end_turn")
    events.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
            "message_delta",
        )
    )
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return events


def anthropic_message(
    text: str, tool_calls: list[tuple[str, str, dict[str, Any]]], usage: dict[str, int]
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in tool_calls]
    return {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": "tool_use" if tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_error(status: int, kind: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body={"type": "error", "error": {"type": kind, "message": f"{kind} (test)"}},
        headers=headers or {},
    )


# --- OpenAI Chat Completions ------------------------------------------------------------------------


def _chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, Any] | None = None
) -> bytes:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    )
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = usage
    return sse(data)


def openai_stream(
    text: str = "",
    tool_calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    *,
    usage: dict[str, Any] | None = None,
) -> list[bytes]:
    """A Chat Completions stream: text in two deltas, tool calls in pieces, a final usage chunk."""
    events = [_chunk({"role": "assistant", "content": ""})]
    if text:
        half = len(text) // 2
        events += [_chunk({"content": text[:half]}), _chunk({"content": text[half:]})]
    for i, (call_id, name, raw) in enumerate(tool_calls):
        half = len(raw) // 2
        events.append(
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": raw[:half]},
                        }
                    ]
                }
            )
        )
        events.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": raw[half:]}}]}))
    events.append(_chunk({}, finish="tool_calls" if tool_calls else "stop"))
    events.append(
        _chunk(None, usage=usage or {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25})
    )
    events.append(b"data: [DONE]\n\n")
    return events


def openai_completion(
    text: str, tool_calls: list[tuple[str, str, str]], usage: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in tool_calls
        ]
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def openai_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body={
            "error": {
                "message": f"status {status} (test)",
                "type": "server_error" if status >= 500 else "requests",
                "code": None,
            }
        },
        headers=headers or {},
    )


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]
