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

#: Asks the SDK for its raw response (the body unread by it, and the headers): what ``with_raw_response``
#: sends, on the client's plain ``post``.
_RAW = {"headers": {"X-Stainless-Raw-Response": "true"}}
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


def _field(data: Any, name: str) -> Any:
    """``name`` of a decoded JSON object or of the SDK's model of it."""
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


def _usage(data: Any) -> Usage:
    if data is None:
        return Usage()
    prompt = int(_field(data, "prompt_tokens") or 0)
    details = _field(data, "prompt_tokens_details")
    cached = int(_field(details, "cached_tokens") or 0) if details is not None else 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=int(_field(data, "completion_tokens") or 0),
        cache_read_tokens=cached,
    )


def _arguments(call: dict[str, Any]) -> str | None:
    """A call's argument text (a server that sends them as an object has them re-encoded)."""
    arguments = (call.get("function") or {}).get("arguments")
    return arguments if arguments is None or isinstance(arguments, str) else json.dumps(arguments)


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

    # The SDK's client posts the request (its auth, headers, errors and timeouts) but the body goes
    # as built and the answer is read as JSON: ``chat.completions.create`` walks every message and
    # tool schema against its typed parameters and builds a model of the answer, about 0.9 ms of a
    # call's 1.7 ms of CPU, for plain JSON that needs neither.

    async def _create(self, client: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        raw = await client.post("/chat/completions", body=params, cast_to=bytes, options=_RAW)
        body = raw.content
        try:
            return json.loads(body), raw.headers
        except ValueError as exc:
            raise ModelError(f"{self.name}: the completion is not JSON: {body[:200]!r}") from exc

    def _from_response(self, completion: Any) -> ModelResponse:
        choices = completion.get("choices") if isinstance(completion, dict) else None
        if not choices:
            raise ModelError(f"{self.name}: the completion has no choices")
        choice = choices[0]
        message = choice.get("message") or {}
        calls = tuple(
            ToolCall.parse(c.get("id") or "", (c.get("function") or {}).get("name") or "", _arguments(c))
            for c in (message.get("tool_calls") or ())
        )
        finish = str(choice.get("finish_reason"))
        return ModelResponse(
            text=message.get("content") or "",
            tool_calls=calls,
            usage=_usage(completion.get("usage")),
            stop_reason=_STOP.get(finish, finish),
            model=self.name,
        )

    async def _complete_streaming(
        self, client: Any, params: dict[str, Any], on_chunk: ChunkCallback | None
    ) -> ModelResponse:
        sdk = self._sdk()
        chat = sdk.types.chat
        stream = await client.post(
            "/chat/completions",
            body={**params, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=chat.ChatCompletion,
            stream=True,
            stream_cls=sdk.AsyncStream[chat.ChatCompletionChunk],
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
            rate_hint=self._hint(stream.response.headers),
        )
