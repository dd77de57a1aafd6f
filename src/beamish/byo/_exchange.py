"""One model request of a run as a journal step: replayed from the journal, or sent, budgeted,
priced and recorded; an error answer is handed back untouched and never journaled.

The durable transports (:mod:`._durable`) call :func:`exchange` for each model request they see.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from beamish.agent._hooks import RunInfo
from beamish.byo._context import RunContext
from beamish.byo._wireformat import bound_request, parse_response, provider_of, with_nudge
from beamish.journal._replay import StepResult
from beamish.telemetry._otel import NullTelemetry

#: ``send(on_chunk, body)`` → status, headers, body (decoded); ``body`` is the request's bytes to send.
Send = Callable[[Callable[[], None], bytes], Awaitable[tuple[int, dict[str, str], bytes]]]


class _NotJournaled(Exception):
    """An error answer: given to the SDK as it came, never recorded."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers, self.content = status, headers, content


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


async def exchange(
    ctx: RunContext, fmt: str, method: str, path: str, raw: bytes, send: Send
) -> tuple[int, dict[str, str], bytes]:
    """One model request as step of ``ctx``'s run: replayed, or sent, budgeted and recorded."""
    body, raw, name, nudge = _read_request(ctx, fmt, raw)
    model = f"{provider_of(fmt)}:{name or 'unknown'}"
    seq = ctx.next_seq()
    info = ctx.info(seq)
    if name:  # priced and budgeted by the model the request names, not the one the spec names
        info = dataclasses.replace(info, model=model)
    ctx.count_turn()

    perform = _performer(ctx, fmt, info, body, raw, send, model)
    request = {"method": method.upper(), "path": path, "body": body}
    turns = body.get("messages", body.get("input")) if isinstance(body, dict) else None
    telemetry = ctx.telemetry if ctx.telemetry is not None else NullTelemetry()
    try:
        with telemetry.chat(model, messages=turns, step=seq) as record:
            result = await ctx.journal.model_step(seq, request, perform, kind="llm", name=model)
            _fill(record, result)
    except _NotJournaled as answer:  # the step was not taken: the SDK's retry takes it, nudge and all
        ctx.give_back(seq)
        ctx.model_turns -= 1
        ctx.nudge = nudge
        return answer.status, answer.headers, answer.content
    except Exception as exc:  # a dropped connection the SDK may retry: likewise
        ctx.remember(exc)
        if ctx.fatal is None:
            ctx.give_back(seq)
            ctx.model_turns -= 1
            ctx.nudge = nudge
        raise
    value = result.value
    ctx.nudge = await ctx.hooks.after_step(info, "llm", model, str(value.get("text", "")), False)
    return int(value["status"]), {"content-type": str(value["content_type"])}, str(value["body"]).encode()


def _read_request(ctx: RunContext, fmt: str, raw: bytes) -> tuple[Any, bytes, str | None, str | None]:
    """The request's body, its bytes, the model it names and the nudge it carries: the loop
    detector's nudge goes to the model with this request, once (given back if the step is not taken)."""
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    name = body.get("model") if isinstance(body, dict) else None
    nudge, ctx.nudge = ctx.nudge, None
    if nudge is not None:
        nudged = with_nudge(fmt, body, nudge)
        if nudged is not body:
            body = nudged
            raw = json.dumps(body, ensure_ascii=False).encode()
    return body, raw, name, nudge


def _performer(
    ctx: RunContext, fmt: str, info: RunInfo, body: Any, raw: bytes, send: Send, model: str
) -> Callable[[], Awaitable[StepResult]]:
    """The live call of the step: reserved against the budget, sent, and priced on its usage; an
    error answer raises :class:`_NotJournaled` so the step is not recorded."""

    async def perform() -> StepResult:
        bound = bound_request(fmt, body, raw)
        token = await ctx.hooks.before_model_call(info, bound)
        try:
            status, headers, content = await send(lambda: ctx.hooks.heartbeat("chunk"), raw)
        except BaseException as exc:
            await ctx.hooks.model_call_failed(info, bound, token, exc)
            raise
        if not 200 <= status < 300:
            error = _NotJournaled(status, headers, content)
            await ctx.hooks.model_call_failed(info, bound, token, error)
            if status == 429:
                ctx.hooks.rate_limited(_retry_after(headers))
            raise error
        ctype = headers.get("content-type", "application/json")
        text = content.decode("utf-8")
        response = parse_response(fmt, ctype, text)
        cost = await ctx.hooks.after_model_call(info, bound, response, token)
        usage = response.usage
        return StepResult(
            value={
                "v": 1,
                "status": status,
                "content_type": ctype,
                "body": text,
                "text": response.text,
                "tool_calls": [c.to_json() for c in response.tool_calls],
                "usage": usage.to_json(),
            },
            tokens_in=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            tokens_out=usage.output_tokens,
            cost_usd=float(cost or 0.0),
            model=model,
        )

    return perform


def _fill(record: Any, result: StepResult) -> None:
    record.input_tokens, record.output_tokens = result.tokens_in, result.tokens_out
    record.cost_usd, record.replayed = result.cost_usd, result.replayed
    value = result.value if isinstance(result.value, dict) else {}
    record.output = {"text": value.get("text", ""), "tool_calls": value.get("tool_calls", [])}
    record.response_model = result.model
