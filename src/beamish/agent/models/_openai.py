"""``openai:<model>``: the official ``openai`` SDK through the Chat Completions API, with tools.

Chat Completions (not the Responses API) because every OpenAI-compatible server speaks it: a
``base_url`` (or the SDK's own ``OPENAI_BASE_URL``) reaches a local server. ``OPENAI_API_KEY`` is read
by the SDK; a local server that needs no key gets a placeholder. SDK retries are off: see ``_retry``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from beamish._exceptions import ModelError
from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent.models._protocol import ChunkCallback
from beamish.agent.models._sdk_model import SdkModel
from beamish.agent.models._settings import ModelSettings

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens", "function_call": "tool_use"}


def to_openai_messages(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Provider-neutral turns → Chat Completions messages (a tool error is marked in its text)."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for msg in messages:
        if msg.role == "user":
            out.append({"role": "user", "content": msg.text})
        elif msg.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": msg.text or None}
            if msg.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in msg.tool_calls
                ]
            out.append(entry)
        else:
            text = f"error: {msg.text}" if msg.is_error and not msg.text.startswith("error") else msg.text
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": text})
    return out


def _usage(data: Any) -> Usage:
    if data is None:
        return Usage()
    prompt = int(getattr(data, "prompt_tokens", 0) or 0)
    details = getattr(data, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=int(getattr(data, "completion_tokens", 0) or 0),
        cache_read_tokens=cached,
    )


class OpenAIModel(SdkModel):
    """A Chat Completions model, OpenAI's or any compatible server's (``base_url``)."""

    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
        **options: Any,
    ) -> None:
        super().__init__(
            model,
            ModelSettings.from_options(self.provider, options, ("max_tokens_param",)),
            example="gpt-4o-mini",
        )
        self.max_tokens_param = max_tokens_param

    def _new_client(self, sdk: Any) -> Any:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        base = self._base_url or os.environ.get("OPENAI_BASE_URL")
        if key is None and base:
            key = "not-needed"  # local OpenAI-compatible servers commonly take no key
        return sdk.AsyncOpenAI(api_key=key, base_url=base, max_retries=0, timeout=self._timeout)

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.system, request.messages),
            self.max_tokens_param: request.max_tokens,
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        return params

    async def _create(self, client: Any, params: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**params)

    def _from_response(self, completion: Any) -> ModelResponse:
        if not completion.choices:
            raise ModelError(f"{self.name}: the completion has no choices")
        choice = completion.choices[0]
        calls = tuple(
            ToolCall.parse(c.id, c.function.name, c.function.arguments)
            for c in (choice.message.tool_calls or ())
        )
        return ModelResponse(
            text=choice.message.content or "",
            tool_calls=calls,
            usage=_usage(completion.usage),
            stop_reason=_STOP.get(str(choice.finish_reason), str(choice.finish_reason)),
            model=self.name,
        )

    async def _complete_streaming(
        self, client: Any, params: dict[str, Any], on_chunk: ChunkCallback | None
    ) -> ModelResponse:
        stream = await client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        texts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish = "stop"
        try:
            async for chunk in self._guarded(stream, on_chunk):
                if getattr(chunk, "usage", None) is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta is not None and delta.content:
                        texts.append(delta.content)
                    for part in (delta.tool_calls if delta is not None else None) or ():
                        slot = calls.setdefault(part.index, {"id": "", "name": "", "args": []})
                        if part.id:
                            slot["id"] = part.id
                        if part.function is not None:
                            if part.function.name:
                                slot["name"] += part.function.name
                            if part.function.arguments:
                                slot["args"].append(part.function.arguments)
                    if choice.finish_reason:
                        finish = str(choice.finish_reason)
        finally:
            await stream.close()
        tool_calls = tuple(
            ToolCall.parse(s["id"] or f"call_{i}", s["name"], "".join(s["args"]))
            for i, s in sorted(calls.items())
        )
        return ModelResponse(
            text="".join(texts),
            tool_calls=tool_calls,
            usage=usage,
            stop_reason=_STOP.get(finish, finish),
            model=self.name,
        )
