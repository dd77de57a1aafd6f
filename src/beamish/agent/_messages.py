"""Provider-neutral messages, tool calls, usage, requests and responses.

Every model adapter translates to and from these records, and the journal stores them, so each one
round-trips through versioned JSON (``to_json`` / ``from_json``). A request's :meth:`fingerprint` is
the hash the journal keeps to notice a replay that asks something different.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

_VERSION = 1

Role = Literal["user", "assistant", "tool"]


def _check_version(data: dict[str, Any], what: str) -> None:
    if data.get("v", _VERSION) != _VERSION:
        raise ValueError(f"unsupported {what} version {data.get('v')!r} (this beamish writes {_VERSION})")


@dataclass(frozen=True)
class ToolCall:
    """The model asks for tool ``name`` with ``arguments``.

    ``arguments_error`` is set when the provider sent arguments that are not a JSON object (a
    malformed tool call): the loop answers it with a tool error instead of calling anything.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    arguments_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.arguments_error is not None:
            data["arguments_error"] = self.arguments_error
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            arguments=dict(data.get("arguments") or {}),
            arguments_error=data.get("arguments_error"),
        )

    @classmethod
    def parse(cls, id: str, name: str, raw: str | None) -> ToolCall:
        """Build a call from the provider's raw argument text, recording (not raising) bad JSON."""
        text = (raw or "").strip()
        if not text:
            return cls(id=id, name=name)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return cls(
                id=id, name=name, arguments_error=f"arguments are not valid JSON ({exc.msg}): {text[:200]}"
            )
        if not isinstance(value, dict):
            return cls(
                id=id, name=name, arguments_error=f"arguments must be a JSON object, got: {text[:200]}"
            )
        return cls(id=id, name=name, arguments=value)


@dataclass(frozen=True)
class Usage:
    """Tokens of one model response; cache reads/writes counted apart, as providers price them apart.

    ``input_tokens`` are the *uncached* input tokens (Anthropic's convention): the whole prompt is
    ``input_tokens + cache_read_tokens + cache_write_tokens``. Adapters for providers that report a
    total (OpenAI's ``prompt_tokens``) subtract the cached part.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            cache_read_tokens=int(data.get("cache_read_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
        )


@dataclass(frozen=True)
class Message:
    """One turn of a conversation.

    ``user``: ``text``. ``assistant``: ``text`` and/or ``tool_calls``. ``tool``: the result ``text``
    of the call ``tool_call_id`` (``is_error`` when the tool failed or was refused).
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "text": self.text}
        if self.tool_calls:
            data["tool_calls"] = [c.to_json() for c in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.is_error:
            data["is_error"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        role = data["role"]
        if role not in ("user", "assistant", "tool"):
            raise ValueError(f"unknown message role {role!r}")
        return cls(
            role=role,
            text=str(data.get("text", "")),
            tool_calls=tuple(ToolCall.from_json(c) for c in data.get("tool_calls", ())),
            tool_call_id=data.get("tool_call_id"),
            is_error=bool(data.get("is_error", False)),
        )


@dataclass(frozen=True)
class ToolSchema:
    """What a model is told about a tool: its name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolSchema:
        return cls(name=data["name"], description=data.get("description", ""), parameters=data["parameters"])


@dataclass(frozen=True)
class ModelRequest:
    """Everything one model call sends: system prompt, conversation, tools and the output cap.

    ``compacted_turns``: model answers that compaction folded out of ``messages`` into a summary
    (see ``beamish.agent._context``); :attr:`turn` counts them, adapters send nothing for them.
    """

    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSchema, ...] = ()
    max_tokens: int = 4096
    temperature: float | None = None
    compacted_turns: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": _VERSION,
            "system": self.system,
            "messages": [m.to_json() for m in self.messages],
            "tools": [t.to_json() for t in self.tools],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.compacted_turns:  # absent when 0: requests of uncompacted runs hash as before
            data["compacted_turns"] = self.compacted_turns
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRequest:
        _check_version(data, "model request")
        return cls(
            system=data["system"],
            messages=tuple(Message.from_json(m) for m in data["messages"]),
            tools=tuple(ToolSchema.from_json(t) for t in data.get("tools", ())),
            max_tokens=int(data.get("max_tokens", 4096)),
            temperature=data.get("temperature"),
            compacted_turns=int(data.get("compacted_turns", 0)),
        )

    def fingerprint(self) -> str:
        """A stable hash of the request: same conversation, same tools, same hash, in any process."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def turn(self) -> int:
        """How many assistant turns the conversation already holds (0 for the first call), those
        folded away by compaction included."""
        return self.compacted_turns + sum(1 for m in self.messages if m.role == "assistant")


@dataclass(frozen=True)
class RateHint:
    """What a provider's rate-limit headers said of the caller's allowance, on a successful answer.

    ``*_remaining`` is what is left, ``*_reset_s`` how long until it is whole again, ``*_limit`` the
    allowance itself (``None``: not said). Tokens are the tightest of the token kinds a provider
    counts (Anthropic counts input and output tokens apart). Never journaled: a replayed answer has
    no headers.
    """

    requests_remaining: int | None = None
    requests_reset_s: float | None = None
    requests_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None
    tokens_limit: int | None = None

    @property
    def blocked_for_s(self) -> float | None:
        """How long every caller should wait: the reset of an allowance that is used up (``None``:
        there is room, or the provider did not say when there will be)."""
        waits = [
            reset
            for remaining, reset in (
                (self.requests_remaining, self.requests_reset_s),
                (self.tokens_remaining, self.tokens_reset_s),
            )
            if remaining is not None and remaining <= 0 and reset is not None
        ]
        return max(waits) if waits else None


@dataclass(frozen=True)
class ModelResponse:
    """One model answer: text and/or tool calls, why it stopped, and its usage."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end_turn"
    model: str = ""
    #: The provider's rate-limit headers on this answer (live calls only; not part of its JSON).
    rate_hint: RateHint | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": _VERSION,
            "text": self.text,
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "usage": self.usage.to_json(),
            "stop_reason": self.stop_reason,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResponse:
        _check_version(data, "model response")
        return cls(
            text=str(data.get("text", "")),
            tool_calls=tuple(ToolCall.from_json(c) for c in data.get("tool_calls", ())),
            usage=Usage.from_json(data.get("usage", {})),
            stop_reason=str(data.get("stop_reason", "end_turn")),
            model=str(data.get("model", "")),
        )

    def as_message(self) -> Message:
        """The assistant turn this response adds to the conversation."""
        return Message(role="assistant", text=self.text, tool_calls=self.tool_calls)
