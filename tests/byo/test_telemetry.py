"""A framework agent's model requests and steps are spans like a native agent's: chat, execute_tool."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent._wire import WireServer
from beamish import AgentSpec
from beamish.agent._runs import runs_of
from beamish.runtime import Node, SupervisorSpec
from beamish.telemetry import Telemetry

from ._replies import Turn, replies

pytestmark = pytest.mark.timeout(30)


async def test_a_framework_agents_requests_and_steps_are_chat_and_execute_tool_spans(tmp_path: Path) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    turns: list[Turn] = [("call_1", "lookup", {"topic": "market"}), "Done."]
    spec = AgentSpec(
        name="writer",
        instructions="",
        model="openai:gpt-4o-mini",
        entry="byo.fixture_agents:openai_agents",
        isolation="task",
    )
    async with WireServer() as server, Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        server.queue(*replies("openai-json", turns))
        runs_of(node).telemetry = Telemetry(tracer_provider=provider, meter_provider=MeterProvider())
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("writer", {"task": "go", "base_url": server.url}, run_id=uuid.uuid4().hex)
        assert (await node.result(run_id, timeout=20)).status == "succeeded"
    finished = spans.get_finished_spans()
    run_span = next(s for s in finished if s.name == "invoke_agent writer")
    chats = [s for s in finished if s.name == "chat gpt-4o-mini"]
    tools = [s for s in finished if s.name == "execute_tool lookup"]
    assert len(chats) == 2 and len(tools) == 1
    assert chats[0].attributes is not None and chats[0].attributes["gen_ai.usage.input_tokens"] == 20
    assert chats[0].parent is not None and run_span.context is not None
    assert chats[0].parent.span_id == run_span.context.span_id
