"""The loop's spans follow the GenAI conventions: invoke_agent ⊃ chat, execute_tool; replays marked."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from beamish import AgentSpec
from beamish.agent._runs import runs_of
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.telemetry import Telemetry

from . import fixture_tools as ft
from ._scripts import call, write_script

pytestmark = pytest.mark.timeout(30)


async def test_a_run_is_an_invoke_agent_span_with_chat_and_execute_tool_children(tmp_path: Path) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer_provider=provider, meter_provider=MeterProvider())
    turns = [
        {"tool_calls": [call("lookup", topic="x")], "usage": {"input_tokens": 10, "output_tokens": 3}},
        {"text": "ok", "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_tokens": 7}},
    ]
    script = write_script(tmp_path, "s", turns)
    spec = AgentSpec("ops", "Operate.", f"scripted:{script}", [ft.lookup], isolation="task")
    url = f"sqlite:///{tmp_path}/j.db"
    for rerun in (False, True):
        async with Node(store=url) as node:
            runs_of(node).telemetry = telemetry
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            if rerun:
                async with await open_store(url) as store:
                    await store.update_run("r1", status="queued")
                runs_of(node).wake("ops")
            else:
                await node.submit("ops", "go", run_id="r1")
            assert (await node.result("r1", timeout=10)).status == "succeeded"
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert names.count("invoke_agent ops") == 2
    chats = [s for s in finished if s.name.startswith("chat ")]
    assert len(chats) == 4
    first, second = chats[0], chats[1]
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["gen_ai.provider.name"] == "scripted"
    assert first.attributes["gen_ai.usage.input_tokens"] == 10
    assert second.attributes["gen_ai.usage.cache_read.input_tokens"] == 7
    assert [c.attributes["beamish.replayed"] for c in chats if c.attributes] == [False, False, True, True]
    tools = [s for s in finished if s.name == "execute_tool lookup"]
    assert len(tools) == 2 and tools[1].attributes is not None and tools[1].attributes["beamish.replayed"]
    run_span = next(s for s in finished if s.name == "invoke_agent ops")
    assert first.parent is not None and run_span.context is not None
    assert first.parent.span_id == run_span.context.span_id
