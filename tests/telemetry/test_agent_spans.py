"""A company with telemetry on: each run, model call and tool call of an agent becomes a GenAI span."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts

pytestmark = pytest.mark.timeout(60)

TOOLS = '''
import beamish

@beamish.tool
def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: What to look up.
    """
    return f"found {query} with key sk-ant-api03-SECRETSECRETSECRETSECRET"
'''


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Agents report through the global providers (as ``opentelemetry-instrument`` would set them)."""
    from opentelemetry import trace

    spans = InMemorySpanExporter()
    processor = SimpleSpanProcessor(spans)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)  # once per process, as the API allows
    provider.add_span_processor(processor)
    yield spans
    spans.clear()
    processor.shutdown()


async def test_an_agent_run_is_an_invoke_agent_span_with_chat_and_execute_tool_children(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "span_tools.py").write_text(TOOLS)
    script = {
        "turns": [
            {
                "tool_calls": [{"name": "lookup", "arguments": {"query": "pricing"}}],
                "usage": {"input_tokens": 120, "output_tokens": 30},
            },
            {"text": "Done.", "usage": {"input_tokens": 150, "output_tokens": 5}},
        ]
    }
    (tmp_path / "cto.json").write_text(json.dumps(script))
    data = {
        "store": {"url": "sqlite:///j.db"},
        "memory": {"enabled": False},
        "telemetry": {"otel": True, "capture_content": True},
        "agents": {
            "cto": {
                "instructions": "x",
                "model": "scripted:cto.json",
                "isolation": "task",
                "tools": ["span_tools:lookup"],
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            }
        },
    }
    cfg = load_config_data(data, tmp_path / "beamish.toml")
    async with Company(cfg, parts=company_parts(cfg)) as company:
        run_id = await company.submit("cto", "Check the pricing page", "run-1")
        assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) >= {"invoke_agent cto", "execute_tool lookup"}
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 2
    agent = spans["invoke_agent cto"]
    assert dict(agent.attributes or {})["gen_ai.conversation.id"] == "run-1"
    assert dict(agent.attributes or {})["gen_ai.provider.name"] == "scripted"
    for child in [*chats, spans["execute_tool lookup"]]:
        assert child.parent is not None and child.parent.span_id == agent.context.span_id
    first = dict(chats[0].attributes or {})
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (120, 30)
    assert first["beamish.cost_usd"] == pytest.approx((120 * 3 + 30 * 15) / 1e6)
    assert first["gen_ai.response.finish_reasons"] == ("tool_use",)
    tool = dict(spans["execute_tool lookup"].attributes or {})
    assert tool["gen_ai.tool.call.id"] == "call_0_0"  # the model's own id for the call
    assert "found pricing" in tool["gen_ai.tool.call.result"]
    assert "SECRETSECRET" not in tool["gen_ai.tool.call.result"]  # content opted in, secrets still redacted
