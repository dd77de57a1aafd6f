"""The most one model call can cost: the bound a budget reserves before the call is made.

A reservation holds a cap only if the call cannot bill more than was held, so each part of the
bound is one the provider cannot pass:

- **Output**: ``max_tokens``. Providers stop there (OpenAI's reasoning tokens count against it too).
- **Input**: the model's own offline token counter, where it has one (the scripted model knows what
  it will report). Neither provider SDK counts offline: ``anthropic``'s ``messages.count_tokens``
  is an API call, the ``openai`` SDK has no tokenizer and ``tiktoken`` fetches its vocabularies
  over the network. For them the bound is the UTF-8 bytes of every string the adapters send —
  the system prompt, each message's text, each tool call's id, name and JSON arguments (as ASCII
  JSON, the longer of the two renderings the adapters send), each tool result's id, each tool's
  name, description and JSON schema — because every tokenizer in use (byte-level BPE, SentencePiece
  with byte fallback) makes each token of at least one byte of that text. To that it adds the
  framing the provider wraps around it: role markers and separators per message, per tool call and
  per tool (OpenAI documents 3-4 tokens a message; :data:`PER_ITEM` allows 32, which also covers
  the role and block-type strings), and the tool-use preamble Anthropic adds to the system prompt
  (530 tokens at most in its documentation; :data:`FIXED` allows 1024).
- **Price**: the dearest of the input, cache-read and cache-write rates of every tier the input
  bound can reach, since the provider decides how a prompt splits between them.

The framing allowances are the one part taken on the providers' word. If a call ever costs more than
its reservation, the guard records ``budget.overshoot`` and pauses the agent at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamish.agent._messages import Message, ModelRequest, ToolSchema

#: Tokens allowed per message, tool call and tool for the provider's framing around their text.
PER_ITEM = 32
#: Tokens allowed per request for the system prompt's framing and a provider's tool-use preamble.
FIXED = 1024

#: ``counter(model_name, request)`` → the input tokens the call will be billed, or None (unknown).
InputCounter = Callable[[str, ModelRequest], int | None]
_COUNTERS: dict[str, InputCounter] = {}


def register_input_counter(provider: str, counter: InputCounter) -> None:
    """Let models named ``provider:…`` count their input offline (the scripted model does)."""
    _COUNTERS[provider] = counter


def counted_input_tokens(model: str, request: ModelRequest) -> int | None:
    """The input tokens ``model``'s own offline counter gives for ``request``, or None."""
    provider, sep, _ = model.partition(":")
    counter = _COUNTERS.get(provider) if sep else None
    return None if counter is None else counter(model, request)


def _utf8(text: str | None) -> int:
    return len(text.encode()) if text else 0


def message_bytes(message: Message) -> int:
    """The bytes the adapters send for ``message``, framing excluded."""
    size = _utf8(message.text) + _utf8(message.tool_call_id)
    for call in message.tool_calls:
        size += _utf8(call.id) + _utf8(call.name) + len(json.dumps(call.arguments))
    return size


def _message_bound(message: Message) -> int:
    return message_bytes(message) + PER_ITEM * (1 + len(message.tool_calls))


def _tool_bytes(tool: ToolSchema) -> int:
    return _utf8(tool.name) + _utf8(tool.description) + len(json.dumps(tool.parameters))


def sent_bytes(request: ModelRequest) -> int:
    """The UTF-8 bytes of every string ``request`` sends, framing excluded."""
    return (
        _utf8(request.system)
        + sum(message_bytes(m) for m in request.messages)
        + sum(_tool_bytes(t) for t in request.tools)
    )


_TOOLS_BOUND: dict[int, tuple[Any, int]] = {}


def _fixed_bound(request: ModelRequest) -> int:
    tools = request.tools
    cached = _TOOLS_BOUND.get(id(tools))
    if cached is None or cached[0] is not tools:  # an agent sends the same tuple every call
        size = sum(_tool_bytes(t) + PER_ITEM for t in tools)
        if len(_TOOLS_BOUND) > 64:
            _TOOLS_BOUND.clear()
        cached = _TOOLS_BOUND[id(tools)] = (tools, size)
    return _utf8(request.system) + FIXED + cached[1]


def request_tokens_bound(request: ModelRequest) -> int:
    """An upper bound on the input tokens of ``request`` without a tokenizer (see the module)."""
    return sum(_message_bound(m) for m in request.messages) + _fixed_bound(request)


@dataclass
class PromptMeter:
    """:func:`request_tokens_bound` for one run's calls, measuring only the messages added since the
    last call (a run's conversation only grows)."""

    _counted: int = 0
    _size: int = 0
    _last: Any = field(default=None, repr=False)

    def bound(self, request: ModelRequest) -> int:
        messages = request.messages
        n = self._counted
        if n > len(messages) or (n and messages[n - 1] is not self._last):
            n, self._size = 0, 0
        self._size += sum(_message_bound(m) for m in messages[n:])
        self._counted = len(messages)
        self._last = messages[-1] if messages else None
        return self._size + _fixed_bound(request)

    def input_bound(self, model: str, request: ModelRequest) -> int:
        """The model's own count where it has one offline, else the byte bound."""
        counted = counted_input_tokens(model, request)
        return self.bound(request) if counted is None else counted
