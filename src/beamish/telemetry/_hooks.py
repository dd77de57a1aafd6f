"""Telemetry in the agent loop: GenAI spans from the loop's hook points, around the semantic hooks.

``AgentSpec(hooks="beamish.telemetry._hooks:make_hooks")`` (what a company with ``[telemetry] otel =
true`` gives each agent) wraps the budget/watchdog/loop hooks the agent would have had, and adds an
``invoke_agent`` span per run, a ``chat`` span per live model call and an ``execute_tool`` span per
tool step. The hooks run wherever the agent runs, so a process-isolated agent reports through its
own process's OpenTelemetry providers (``opentelemetry-instrument`` configures child interpreters
too). ``BEAMISH_OTEL_CAPTURE_CONTENT=1`` attaches prompts, replies and tool results (redacted).
"""

from __future__ import annotations

import os
import time
from typing import Any

from beamish._clock import Clock
from beamish.telemetry._otel import ChatRecord, Telemetry

#: Tests (and embedders) may set the providers the hooks use; by default the global ones.
PROVIDERS: dict[str, Any] = {}


def make_hooks(spec: Any, store: Any, clock: Clock) -> Any:
    """The factory named in ``AgentSpec.hooks``: the agent's semantic hooks, with telemetry around them."""
    from beamish.agent._hooks import NullHooks

    inner: Any = NullHooks()
    if spec.budget is not None or spec.watchdog is not None or getattr(spec, "policy", None) is not None:
        from beamish.agent._policy import make_hooks as semantic

        inner = semantic(spec, store, clock)
    telemetry = Telemetry(
        tracer_provider=PROVIDERS.get("tracer"),
        meter_provider=PROVIDERS.get("meter"),
        capture_content=os.environ.get("BEAMISH_OTEL_CAPTURE_CONTENT") == "1",
    )
    return TelemetryHooks(inner, telemetry)


class TelemetryHooks:
    """Delegates every hook to ``inner`` and records spans around them."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry
        self._runs: dict[str, Any] = {}
        self._last_ns: dict[str, int] = {}

    async def before_run(self, run: Any) -> None:
        self._runs[run.run_id] = self.telemetry.start_agent_span(run.agent, run.run_id, model=run.model)
        self._last_ns[run.run_id] = time.time_ns()
        try:
            await self.inner.before_run(run)
        except BaseException as exc:
            self.telemetry.end_span(self._runs.pop(run.run_id), error=exc)
            raise

    async def before_model_call(self, run: Any, request: Any) -> Any:
        token = await self.inner.before_model_call(run, request)
        messages = [m.to_json() for m in request.messages] if self.telemetry.capture_content else None
        span = self.telemetry.start_chat_span(
            run.model,
            parent=self._runs.get(run.run_id),
            messages=messages,
            max_tokens=request.max_tokens,
            step=run.seq,
        )
        return (token, span, time.perf_counter())

    async def after_model_call(self, run: Any, request: Any, response: Any, token: Any) -> float:
        inner_token, span, started = token
        try:
            cost = float(await self.inner.after_model_call(run, request, response, inner_token))
        except BaseException as exc:
            self.telemetry.end_span(span, error=exc)
            raise
        usage = response.usage
        record = ChatRecord(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=getattr(usage, "cache_read_tokens", 0),
            cache_write_tokens=getattr(usage, "cache_write_tokens", 0),
            cost_usd=cost,
            response_model=response.model or None,
            finish_reasons=[response.stop_reason] if response.stop_reason else [],
            output=response.to_json() if self.telemetry.capture_content else None,
        )
        self.telemetry.finish_chat_span(span, record, run.model, time.perf_counter() - started)
        self._last_ns[run.run_id] = time.time_ns()
        return cost

    async def model_call_failed(self, run: Any, request: Any, token: Any, error: BaseException) -> None:
        inner_token, span, _started = token
        self.telemetry.end_span(span, error=error)
        self._last_ns[run.run_id] = time.time_ns()
        await self.inner.model_call_failed(run, request, inner_token, error)

    async def after_step(self, run: Any, kind: str, name: str, result: str, is_error: bool) -> str | None:
        if kind == "tool":
            start = self._last_ns.get(run.run_id, time.time_ns())
            self.telemetry.record_tool_span(
                name,
                f"{run.run_id}:{run.seq}",
                parent=self._runs.get(run.run_id),
                start_ns=start,
                result=result,
                is_error=is_error,
                replayed=bool(getattr(run, "replaying", False)),
            )
        self._last_ns[run.run_id] = time.time_ns()
        nudge: str | None = await self.inner.after_step(run, kind, name, result, is_error)
        return nudge

    async def after_run(self, run: Any, status: str) -> None:
        try:
            await self.inner.after_run(run, status)
        finally:
            span = self._runs.pop(run.run_id, None)
            self._last_ns.pop(run.run_id, None)
            if span is not None:
                span.set_attribute("beamish.run.status", status)
                self.telemetry.end_span(span, error_type=None if status == "succeeded" else status)

    async def resume(self, subject: str) -> bool:
        """Lift a pause through the semantic hooks (``beamish resume``), if they keep pauses."""
        resume = getattr(self.inner, "resume", None)
        return bool(await resume(subject)) if callable(resume) else False

    def heartbeat(self, what: str) -> None:
        self.inner.heartbeat(what)

    def extend(self, seconds: float) -> None:
        self.inner.extend(seconds)

    def rate_limited(self, seconds: float) -> None:
        span = next(reversed(self._runs.values()), None) if self._runs else None
        if span is not None:
            span.add_event("model.rate_limited", {"beamish.retry_after_s": seconds})
        self.inner.rate_limited(seconds)
