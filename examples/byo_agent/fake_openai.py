"""A local stand-in for an OpenAI-compatible server: scripted Chat Completions answers, counted.

It answers the n-th request it receives with the n-th scripted turn, so a request sent twice
would get the wrong answer, and it counts what it answered. ``hold_at`` keeps one request
unanswered until ``release()``, so the demo can kill the agent while it waits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

TURNS: list[Any] = [
    ("research", {"topic": "launch"}),
    ("publish", {"text": "We launched: 120 sign-ups on day one."}),
    "Posted the launch announcement.",
]


def _completion(n: int, turn: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn if isinstance(turn, str) else None}
    if not isinstance(turn, str):
        call = {
            "id": f"call_{n}",
            "type": "function",
            "function": {"name": turn[0], "arguments": json.dumps(turn[1])},
        }
        message["tool_calls"] = [call]
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop" if isinstance(turn, str) else "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 350, "completion_tokens": 40, "total_tokens": 390},
    }


class FakeOpenAI:
    def __init__(self, hold_at: int | None = None) -> None:
        self.answered = 0
        self.received = 0
        self.hold_at = hold_at
        self.holding = asyncio.Event()
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._release.set()
        self._server.close()

    def release(self) -> None:
        self._release.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next(
                (
                    int(line.split(":")[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            self.received += 1
            if self.received == self.hold_at:
                self.holding.set()
                await self._release.wait()
                return  # the asker was killed meanwhile: nobody to answer
            turn = TURNS[min(self.answered, len(TURNS) - 1)]
            body = json.dumps(_completion(self.answered, turn)).encode()
            self.answered += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
