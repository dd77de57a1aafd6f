"""``anthropic:<model>``: Claude through the official ``anthropic`` SDK's Messages API, with tool use.

The SDK's own retries are off (``max_retries=0``): retries belong to :mod:`._retry`, which knows a
429 from an outage. ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are honoured by the SDK itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent.models._protocol import ChunkCallback
from beamish.agent.models._sdk_model import SdkModel
from beamish.agent.models._settings import ModelSettings


def to_anthropic_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Provider-neutral turns → Messages API turns; consecutive tool results share one user turn."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "user":
            out.append({"role": "user", "content": msg.text})
        elif msg.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if msg.text:
                blocks.append({"type": "text", "text": msg.text})
            for call in msg.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
            out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": ""}]})
        else:
            block = {
                "type": "tool_result",
                "tool_use_id": msg.tool_call_id,
                "content": msg.text,
                "is_error": msg.is_error,
            }
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
    return out


def _usage(data: Any) -> Usage:
    return Usage(
        input_tokens=int(getattr(data, "input_tokens", 0) or 0),
        output_tokens=int(getattr(data, "output_tokens", 0) or 0),
        cache_read_tokens=int(getattr(data, "cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(getattr(data, "cache_creation_input_tokens", 0) or 0),
    )


class AnthropicModel(SdkModel):
    """A Claude model. ``stream=True`` (the default) makes every chunk a watchdog heartbeat;
    ``prompt_cache=True`` (the default) asks the API to cache the conversation's prefix."""

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        prompt_cache: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            model,
            ModelSettings.from_options(self.provider, options, ("prompt_cache",)),
            example="claude-sonnet-4-5",
        )
        self.prompt_cache = prompt_cache

    def _new_client(self, sdk: Any) -> Any:
        return sdk.AsyncAnthropic(
            api_key=self._api_key, base_url=self._base_url, max_retries=0, timeout=self._timeout
        )

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": to_anthropic_messages(request.messages),
        }
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if self.prompt_cache:
            # an agent resends its whole conversation each turn: cache the prefix (the API marks the
            # last cacheable block), so later turns pay cache-read prices for what was already sent
            params["cache_control"] = {"type": "ephemeral"}
        return params

    async def _create(self, client: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        raw = await client.messages.with_raw_response.create(**params)
        message = raw.parse()  # awaited in newer SDKs (AsyncAPIResponse), not in older
        return (await message if inspect.isawaitable(message) else message), raw.headers

    def _from_response(self, message: Any) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                if isinstance(block.input, dict):
                    calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
                else:
                    calls.append(
                        ToolCall(
                            id=block.id, name=block.name, arguments_error="tool input is not a JSON object"
                        )
                    )
        return ModelResponse(
            text="".join(texts),
            tool_calls=tuple(calls),
            usage=_usage(message.usage),
            stop_reason=str(message.stop_reason or "end_turn"),
            model=self.name,
        )

    async def _complete_streaming(
        self, client: Any, params: dict[str, Any], on_chunk: ChunkCallback | None
    ) -> ModelResponse:
        stream = await client.messages.create(**params, stream=True)
        texts: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        usage = Usage()
        stop_reason = "end_turn"
        try:
            async for event in self._guarded(stream, on_chunk):
                kind = event.type
                if kind == "message_start":
                    usage = _usage(event.message.usage)
                elif kind == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        blocks[event.index] = {"id": block.id, "name": block.name, "json": []}
                    elif block.type == "text" and block.text:
                        texts.append(block.text)
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        texts.append(delta.text)
                    elif delta.type == "input_json_delta" and event.index in blocks:
                        blocks[event.index]["json"].append(delta.partial_json)
                elif kind == "message_delta":
                    if event.delta.stop_reason:
                        stop_reason = str(event.delta.stop_reason)
                    late = _usage(event.usage)
                    usage = Usage(
                        input_tokens=late.input_tokens or usage.input_tokens,
                        output_tokens=late.output_tokens or usage.output_tokens,
                        cache_read_tokens=late.cache_read_tokens or usage.cache_read_tokens,
                        cache_write_tokens=late.cache_write_tokens or usage.cache_write_tokens,
                    )
        finally:
            await stream.close()
        calls = tuple(
            ToolCall.parse(b["id"], b["name"], "".join(b["json"])) for _, b in sorted(blocks.items())
        )
        return ModelResponse(
            text="".join(texts),
            tool_calls=calls,
            usage=usage,
            stop_reason=stop_reason,
            model=self.name,
            rate_hint=self._hint(stream.response.headers),
        )
