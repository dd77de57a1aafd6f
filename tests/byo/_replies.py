"""Scripted answers of the local wire-format server, in each provider's format."""

from __future__ import annotations

import json
from typing import Any

from agent._wire import Reply, anthropic_stream, openai_completion, openai_stream

#: A turn: a tool call ``(call id, tool, arguments)`` or the final text.
Turn = tuple[str, str, dict[str, Any]] | str

USAGE = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}


def reply(fmt: str, turn: Turn, usage: dict[str, Any] | None = None) -> Reply:
    """``fmt``: ``openai-stream``, ``openai-json`` or ``anthropic-stream``."""
    text, calls = (turn, []) if isinstance(turn, str) else ("", [(turn[0], turn[1], json.dumps(turn[2]))])
    if fmt == "openai-stream":
        return Reply(events=openai_stream(text, calls, usage=usage))
    if fmt == "openai-json":
        return Reply(body=openai_completion(text, calls, usage or USAGE))
    if fmt == "anthropic-stream":
        return Reply(events=anthropic_stream(text, calls))
    raise ValueError(fmt)


def replies(fmt: str, turns: list[Turn], usage: dict[str, Any] | None = None) -> list[Reply]:
    return [reply(fmt, t, usage) for t in turns]
