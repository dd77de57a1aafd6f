"""A planted API key and a configured secret appear in no output of a company run.

The provider key is planted in the environment (where the SDKs read it) and a payments secret of
no known shape under a secret-named variable; the model then puts both in a tool argument, the
tool puts the secret in its result and in an error, the model writes them to the shared memory
and into its final answer. Every output is then searched for both: the journal (a full SQL dump
and the raw database and WAL bytes), the events, the log records, the OpenTelemetry spans (with
content capture on), stdout and stderr, and the memory file.
"""

from __future__ import annotations

import json
import logging
import sqlite3
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

API_KEY = "sk-ant-api03-PLANTEDkey0123456789abcdefXYZ"
SECRET = "pay-PLANTED-77f1c2d9e8a4b6"
PLANTED = (API_KEY, SECRET, "PLANTED")

TOOLS = '''
import os

import beamish


@beamish.tool(effect="idempotent")
def charge(card: str, note: str, ctx: beamish.ToolContext) -> str:
    """Charge a card.

    Args:
        card: The card.
        note: A note.
    """
    secret = os.environ["SOLO_PAYMENTS_SECRET"]
    if ctx.idempotency_key.endswith(":1") and not os.environ.get("PLANT_FAILED_ONCE"):
        os.environ["PLANT_FAILED_ONCE"] = "1"
        raise RuntimeError(f"gateway refused {card} with secret {secret}")
    return f"charged {card}; receipt signed with {secret}"
'''


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    from opentelemetry import trace

    spans = InMemorySpanExporter()
    processor = SimpleSpanProcessor(spans)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(processor)
    yield spans
    spans.clear()
    processor.shutdown()


def _script() -> dict[str, object]:
    leak = f"use key {API_KEY} and {SECRET}"
    return {
        "turns": [
            {"tool_calls": [{"name": "charge", "arguments": {"card": API_KEY, "note": leak}}]},
            {"tool_calls": [{"name": "charge", "arguments": {"card": "4242", "note": leak}}]},
            {
                "tool_calls": [
                    {
                        "name": "create_entities",
                        "arguments": {
                            "entities": [{"name": "billing", "entityType": "note", "observations": [leak]}]
                        },
                    }
                ]
            },
            {"text": f"Done. The receipt: {{last_tool}} {leak}"},
        ]
    }


def _grep(where: str, text: str, found: list[str]) -> None:
    for secret in PLANTED:
        if secret in text:
            at = text.index(secret)
            found.append(f"{where}: ...{text[max(0, at - 60) : at + 40]!r}")


async def test_a_planted_key_and_secret_reach_no_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("SOLO_PAYMENTS_SECRET", SECRET)
    monkeypatch.delenv("PLANT_FAILED_ONCE", raising=False)
    caplog.set_level(logging.DEBUG)
    (tmp_path / "plant_tools.py").write_text(TOOLS)
    (tmp_path / "cfo.json").write_text(json.dumps(_script()))
    data = {
        "store": {"url": "sqlite:///j.db"},
        "memory": {"file": "memory.jsonl"},
        "telemetry": {"otel": True, "capture_content": True},
        "agents": {
            "cfo": {
                "instructions": "You pay the bills.",
                "model": "scripted:cfo.json",
                "isolation": "task",
                "tools": ["plant_tools:charge", "memory"],
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            }
        },
    }
    config = load_config_data(data, tmp_path / "beamish.toml")
    events = []
    async with Company(config, parts=company_parts(config)) as company:
        run_id = await company.submit("cfo", f"Pay the invoice; the key is {API_KEY}", "run-1")
        outcome = await company.node.result(run_id, timeout=30)
        events = [e async for e in _drain(company)]
    assert outcome.status == "succeeded", outcome

    found: list[str] = []
    db = tmp_path / "j.db"
    conn = sqlite3.connect(db)
    try:
        _grep("journal dump", "\n".join(conn.iterdump()), found)
    finally:
        conn.close()
    for path in tmp_path.glob("j.db*"):
        _grep(f"raw bytes of {path.name}", path.read_bytes().decode("latin-1"), found)
    for event in events:
        _grep(f"event {event.kind}", json.dumps(event.to_json(), default=str), found)
    for record in caplog.records:
        _grep(f"log {record.name}", record.getMessage() + (record.exc_text or ""), found)
    for span in exporter.get_finished_spans():
        _grep(f"span {span.name}", json.dumps(dict(span.attributes or {}), default=str), found)
        for span_event in span.events:
            _grep(
                f"span event {span.name}", json.dumps(dict(span_event.attributes or {}), default=str), found
            )
    out, err = capfd.readouterr()
    _grep("stdout", out, found)
    _grep("stderr", err, found)
    for path in tmp_path.glob("memory.jsonl*"):
        _grep(f"memory file {path.name}", path.read_text(errors="replace"), found)
    assert not found, "secrets leaked:\n" + "\n".join(found)
    assert exporter.get_finished_spans() and events  # the outputs were really produced


async def _drain(company: Company):  # type: ignore[no-untyped-def]
    """The events the company kept (the dashboard's and the control channel's feed)."""
    import asyncio

    stream = company.events(replay=500)
    while True:
        try:
            yield await asyncio.wait_for(anext(stream), 0.5)
        except (TimeoutError, StopAsyncIteration):
            return
