"""OpenTelemetry spans and metrics after the GenAI semantic conventions.

Three span kinds, as the conventions name them: ``invoke_agent {agent}`` around a run,
``chat {model}`` around a model call and ``execute_tool {tool}`` around a tool call, with
``gen_ai.*`` attributes; what the conventions do not cover (cost, replay, the supervisor's view)
goes under ``beamish.*``. Prompts, replies and tool arguments are attached only when
``capture_content`` is on, and always redacted. The SDK is imported only here, behind the ``otel``
extra: without it beamish runs with telemetry off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from beamish._events import Event
from beamish._redact import redact

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised only without the extra
    _trace = None  # type: ignore[assignment]
    _metrics = None  # type: ignore[assignment]

_SCOPE = "beamish"
_ABNORMAL = {"crashed", "killed", "hung", "looping", "over_budget", "memory_exceeded"}


def otel_available() -> bool:
    """True when the ``otel`` extra (the OpenTelemetry API and SDK) is installed."""
    return _trace is not None


def _provider_of(model: str) -> tuple[str, str]:
    provider, _, name = model.partition(":")
    return (provider, name) if name else ("unknown", model)


def _content(value: Any) -> str:
    return json.dumps(redact(value), ensure_ascii=False, default=str)


@dataclass
class ChatRecord:
    """What a model call returned, for its ``chat`` span (set it inside the ``with`` block)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    output: Any = None
    replayed: bool = False


@dataclass
class ToolRecord:
    """What a tool call returned, for its ``execute_tool`` span."""

    result: Any = None
    replayed: bool = False


class Telemetry:
    """Spans and metrics for runs, model calls, tool calls and supervisor events.

    Pass providers explicitly (tests give an in-memory exporter); by default the global ones are
    used, so ``opentelemetry-instrument`` or the application's own SDK setup decides where data goes.
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: bool = False,
    ) -> None:
        if _trace is None or _metrics is None:
            raise ImportError("OpenTelemetry is not installed: pip install 'beamish[otel]'")
        self.capture_content = capture_content
        self._tracer = _trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = (meter_provider or _metrics.get_meter_provider()).get_meter(_SCOPE)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per model call"
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of GenAI operations"
        )
        self._cost = meter.create_counter(
            "beamish.cost", unit="USD", description="Money spent on model calls"
        )
        self._exits = meter.create_counter("beamish.supervisor.exits", description="Child exits by reason")
        self._restarts = meter.create_counter("beamish.supervisor.restarts", description="Child restarts")
        self._paused = meter.create_up_down_counter("beamish.agent.paused", description="Agents paused now")
        self._upgrades = meter.create_counter(
            "beamish.agent.upgrades", description="Live upgrades of agents by outcome"
        )
        self._replayed = meter.create_counter(
            "beamish.steps.replayed", description="Steps served from the journal"
        )

    @contextmanager
    def invoke_agent(
        self, agent: str, run_id: str, *, model: str | None = None, task: Any = None
    ) -> Iterator[Span]:
        """The span of one run of ``agent``."""
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.agent.id": agent,
            "gen_ai.conversation.id": run_id,
            "beamish.run.id": run_id,
        }
        if model:
            provider, name = _provider_of(model)
            attrs["gen_ai.provider.name"] = provider
            attrs["gen_ai.request.model"] = name
        if self.capture_content and task is not None:
            attrs["gen_ai.input.messages"] = _content(
                [{"role": "user", "parts": [{"type": "text", "content": task}]}]
            )
        with self._span(f"invoke_agent {agent}", SpanKind.INTERNAL, attrs) as span:
            yield span

    @contextmanager
    def chat(
        self, model: str, *, messages: Any = None, max_tokens: int | None = None, step: int | None = None
    ) -> Iterator[ChatRecord]:
        """The span of one model call; fill the yielded :class:`ChatRecord` with the response."""
        provider, name = _provider_of(model)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": name,
        }
        if max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = max_tokens
        if step is not None:
            attrs["beamish.step.seq"] = step
        if self.capture_content and messages is not None:
            attrs["gen_ai.input.messages"] = _content(messages)
        record = ChatRecord()
        started = time.perf_counter()
        error: str | None = None
        with self._span(f"chat {name}", SpanKind.CLIENT, attrs) as span:
            try:
                yield record
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                self._finish_chat(span, record, provider, name, time.perf_counter() - started, error)

    def _finish_chat(
        self, span: Span, record: ChatRecord, provider: str, model: str, elapsed: float, error: str | None
    ) -> None:
        span.set_attribute("gen_ai.usage.input_tokens", record.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", record.output_tokens)
        if record.cache_read_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", record.cache_read_tokens)
        if record.cache_write_tokens:
            span.set_attribute("gen_ai.usage.cache_creation.input_tokens", record.cache_write_tokens)
        if record.response_model:
            span.set_attribute("gen_ai.response.model", record.response_model)
        if record.response_id:
            span.set_attribute("gen_ai.response.id", record.response_id)
        if record.finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", record.finish_reasons)
        if self.capture_content and record.output is not None:
            span.set_attribute("gen_ai.output.messages", _content(record.output))
        span.set_attribute("beamish.cost_usd", record.cost_usd)
        span.set_attribute("beamish.replayed", record.replayed)
        metric_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        if error:
            metric_attrs["error.type"] = error
        self._duration.record(elapsed, metric_attrs)
        if record.replayed:
            self._replayed.add(1, {"beamish.step.kind": "llm"})
            return
        for kind, count in (("input", record.input_tokens), ("output", record.output_tokens)):
            self._tokens.record(count, {**metric_attrs, "gen_ai.token.type": kind})
        if record.cost_usd:
            self._cost.add(record.cost_usd, {"gen_ai.request.model": model})

    @contextmanager
    def execute_tool(
        self, tool: str, call_id: str, *, arguments: Any = None, effect: str | None = None
    ) -> Iterator[ToolRecord]:
        """The span of one tool call; set ``result`` on the yielded :class:`ToolRecord`."""
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }
        if effect:
            attrs["beamish.tool.effect"] = effect
        if self.capture_content and arguments is not None:
            attrs["gen_ai.tool.call.arguments"] = _content(arguments)
        record = ToolRecord()
        with self._span(f"execute_tool {tool}", SpanKind.INTERNAL, attrs) as span:
            try:
                yield record
            finally:
                span.set_attribute("beamish.replayed", record.replayed)
                if record.replayed:
                    self._replayed.add(1, {"beamish.step.kind": "tool"})
                if self.capture_content and record.result is not None:
                    span.set_attribute("gen_ai.tool.call.result", _content(record.result))

    def on_event(self, event: Event) -> None:
        """An event sink: supervisor and budget facts become metrics and span events."""
        attrs: dict[str, Any] = {"beamish.subject": event.subject}
        if event.kind == "child.exited":
            reason = _reason_kind(event.data)
            self._exits.add(1, {**attrs, "beamish.exit.reason": reason})
        elif event.kind == "child.restarted":
            self._restarts.add(1, attrs)
        elif event.kind == "agent.paused":
            self._paused.add(1, attrs)
        elif event.kind == "agent.resumed":
            self._paused.add(-1, attrs)
        elif event.kind in ("agent.upgraded", "agent.rolled_back"):
            self._upgrades.add(1, {**attrs, "beamish.upgrade.outcome": event.kind.partition(".")[2]})
        current = _trace.get_current_span() if _trace is not None else None
        if current is not None and current.is_recording():
            current.add_event(event.kind, {**attrs, "beamish.event.data": _content(event.data)})

    @contextmanager
    def _span(self, name: str, kind: SpanKind, attrs: dict[str, Any]) -> Iterator[Span]:
        """The current span for ``name``; an exception out of it sets ``error.type`` and an error
        status here, its message redacted (the SDK's own recording would keep the message as is)."""
        with self._tracer.start_as_current_span(
            name, kind=kind, attributes=attrs, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, redact(str(exc))))
                raise


def _reason_kind(data: dict[str, Any]) -> str:
    reason = data.get("reason")
    if isinstance(reason, dict):
        return str(reason.get("kind", "unknown"))
    if isinstance(reason, str):
        return reason
    return "unknown"


def is_abnormal(data: dict[str, Any]) -> bool:
    """True when an exit event's reason is worth an alert (crash, kill, hang, loop, budget, memory)."""
    return _reason_kind(data) in _ABNORMAL


class NullTelemetry:
    """Telemetry switched off: the same context managers as :class:`Telemetry`, recording nothing."""

    @contextmanager
    def invoke_agent(self, agent: str, run_id: str, **kw: Any) -> Iterator[None]:
        yield None

    @contextmanager
    def chat(self, model: str, **kw: Any) -> Iterator[ChatRecord]:
        yield ChatRecord()

    @contextmanager
    def execute_tool(self, tool: str, call_id: str, **kw: Any) -> Iterator[ToolRecord]:
        yield ToolRecord()
