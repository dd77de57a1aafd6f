"""Spans and metrics follow the GenAI semantic conventions; content only when asked; secrets never."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from beamish._events import Event
from beamish.telemetry import MASK, Telemetry

pytestmark = pytest.mark.timeout(20)


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider = provider
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def telemetry(self, capture_content: bool = False) -> Telemetry:
        return Telemetry(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            capture_content=capture_content,
        )

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans.get_finished_spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans.get_finished_spans()]
        return found[0]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        points: list[Any] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def rec() -> Iterator[Recorded]:
    yield Recorded()


def run_one_turn(tel: Telemetry, secret_task: str = "Post today's update") -> None:
    with tel.invoke_agent("marketing", "run-1", model="anthropic:claude-sonnet-4-5", task=secret_task):
        with tel.chat(
            "anthropic:claude-sonnet-4-5",
            messages=[{"role": "user", "content": secret_task}],
            max_tokens=512,
            step=1,
        ) as chat:
            chat.input_tokens, chat.output_tokens = 120, 30
            chat.cost_usd = 0.00081
            chat.response_model = "claude-sonnet-4-5-20250929"
            chat.finish_reasons = ["tool_use"]
            chat.output = [{"role": "assistant", "content": "calling post"}]
        with tel.execute_tool(
            "post", "run-1:2", arguments={"text": "hello", "api_key": "abcdefgh1234"}, effect="once"
        ) as tool:
            tool.result = "posted"


def test_a_run_gives_invoke_agent_chat_and_execute_tool_spans_nested(rec: Recorded) -> None:
    run_one_turn(rec.telemetry())
    agent = rec.span("invoke_agent marketing")
    chat = rec.span("chat claude-sonnet-4-5")
    tool = rec.span("execute_tool post")
    assert chat.parent is not None and chat.parent.span_id == agent.context.span_id
    assert tool.parent is not None and tool.parent.span_id == agent.context.span_id


def test_spans_carry_the_gen_ai_attributes(rec: Recorded) -> None:
    run_one_turn(rec.telemetry())
    agent = dict(rec.span("invoke_agent marketing").attributes or {})
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    assert agent["gen_ai.agent.name"] == "marketing"
    assert agent["gen_ai.conversation.id"] == "run-1"
    assert agent["gen_ai.provider.name"] == "anthropic"
    chat = dict(rec.span("chat claude-sonnet-4-5").attributes or {})
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert chat["gen_ai.request.max_tokens"] == 512
    assert chat["gen_ai.usage.input_tokens"] == 120
    assert chat["gen_ai.usage.output_tokens"] == 30
    assert chat["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"
    assert chat["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert chat["beamish.cost_usd"] == pytest.approx(0.00081)
    assert chat["beamish.replayed"] is False
    tool = dict(rec.span("execute_tool post").attributes or {})
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "post"
    assert tool["gen_ai.tool.call.id"] == "run-1:2"
    assert tool["beamish.tool.effect"] == "once"


def test_content_is_absent_unless_opted_in(rec: Recorded) -> None:
    run_one_turn(rec.telemetry(capture_content=False))
    for span in rec.spans.get_finished_spans():
        keys = set(span.attributes or {})
        assert not keys & {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        }, span.name


def test_opted_in_content_is_attached_with_secrets_redacted(
    rec: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-THISISASECRETKEYVALUE")
    run_one_turn(
        rec.telemetry(capture_content=True), secret_task="use key sk-ant-api03-THISISASECRETKEYVALUE"
    )
    chat = dict(rec.span("chat claude-sonnet-4-5").attributes or {})
    assert "sk-ant" not in str(chat["gen_ai.input.messages"])
    assert MASK in str(chat["gen_ai.input.messages"])
    assert "calling post" in str(chat["gen_ai.output.messages"])
    tool = dict(rec.span("execute_tool post").attributes or {})
    assert '"text": "hello"' in str(tool["gen_ai.tool.call.arguments"])
    assert "abcdefgh1234" not in str(tool["gen_ai.tool.call.arguments"])
    assert tool["gen_ai.tool.call.result"] == '"posted"'


def test_a_failing_model_call_marks_its_span_as_an_error_with_the_type(rec: Recorded) -> None:
    tel = rec.telemetry()
    with pytest.raises(RuntimeError), tel.chat("openai:gpt-4o-mini"):
        raise RuntimeError("HTTP 500 from https://user:hunter22@api.example/v1")
    span = rec.span("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert "hunter22" not in (span.status.description or "")


def test_token_usage_and_cost_are_recorded_as_metrics(rec: Recorded) -> None:
    run_one_turn(rec.telemetry())
    tokens = rec.metric_points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p.sum for p in tokens}
    assert by_type == {"input": 120, "output": 30}
    cost = rec.metric_points("beamish.cost")
    assert sum(p.value for p in cost) == pytest.approx(0.00081)
    assert rec.metric_points("gen_ai.client.operation.duration")


def test_a_replayed_call_counts_as_replayed_and_costs_nothing_again(rec: Recorded) -> None:
    tel = rec.telemetry()
    with tel.chat("anthropic:claude-haiku-4-5") as chat:
        chat.input_tokens, chat.output_tokens, chat.cost_usd, chat.replayed = 10, 5, 0.01, True
    assert rec.metric_points("beamish.cost") == []
    assert sum(p.value for p in rec.metric_points("beamish.steps.replayed")) == 1


def test_supervisor_events_become_metrics_by_reason(rec: Recorded) -> None:
    tel = rec.telemetry()
    tel.on_event(Event("child.exited", "cfo", {"reason": {"v": 1, "kind": "killed"}}))
    tel.on_event(Event("child.exited", "cto", {"reason": {"v": 1, "kind": "hung", "silent_for_s": 3.0}}))
    tel.on_event(Event("child.restarted", "cfo", {}))
    tel.on_event(Event("agent.paused", "improver", {}))
    exits = {
        p.attributes["beamish.exit.reason"]: p.value for p in rec.metric_points("beamish.supervisor.exits")
    }
    assert exits == {"killed": 1, "hung": 1}
    assert sum(p.value for p in rec.metric_points("beamish.supervisor.restarts")) == 1
    assert sum(p.value for p in rec.metric_points("beamish.agent.paused")) == 1


def test_an_event_during_a_run_is_attached_to_its_span(rec: Recorded) -> None:
    tel = rec.telemetry()
    with tel.invoke_agent("cfo", "run-9"):
        tel.on_event(Event("budget.warning", "cfo", {"spent": 2.4, "cap": 3.0}))
    span = rec.span("invoke_agent cfo")
    assert [e.name for e in span.events] == ["budget.warning"]
