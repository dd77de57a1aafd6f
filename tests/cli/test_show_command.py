"""``beamish show RUN`` as text: one line per step, marks, then the run's end."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish._events import Event
from beamish._exits import Crashed
from beamish.cli import app
from beamish.company import load_config
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()


async def _record(url: str) -> None:
    store = await open_store(url)
    try:
        await store.create_run("assistant", "What time is it?", run_id="r1")
        epoch = await store.claim_run("r1", "node")
        response = {
            "text": "",
            "tool_calls": [{"id": "c1", "name": "now", "arguments": {}}],
            "usage": {
                "input_tokens": 82,
                "output_tokens": 8,
                "cache_read_tokens": 40,
                "cache_write_tokens": 0,
            },
        }
        await store.record_step(
            "r1", 0, epoch, kind="llm", phase="done", name="anthropic:claude-haiku-4-5",
            request={}, response=response, tokens_in=82, tokens_out=8, cost_usd=0.000125,
        )  # fmt: skip
        await store.record_step(
            "r1", 1, epoch, kind="tool", phase="done", name="now", request={"tool": "now", "args": {}},
            response={"text": "2026-12-07 20:10 UTC", "is_error": False},
        )  # fmt: skip
        await store.append_event(Event("step.replayed", "r1", {"run_id": "r1", "from_seq": 0, "to_seq": 0}))
        error = RuntimeError("the clock broke\nsecond line of the story")
        await store.update_run("r1", status="failed", reason=Crashed(error), epoch=epoch)
    finally:
        await store.close()


def test_show_prints_each_step_its_marks_and_the_runs_error(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path / "co")]).exit_code == 0
    config = tmp_path / "co" / "beamish.toml"
    asyncio.run(_record(load_config(config).store_url))
    result = runner.invoke(app, ["show", "r1", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("run r1  agent assistant  failed  $0.0001")
    assert lines[1] == "task: What time is it?"
    assert (
        "llm    anthropic:claude-haiku-4-5  in 82 out 8 cache 40r/0w  $0.000125  → calls now({})" in lines[2]
    )
    assert lines[2].endswith("replayed")
    assert "tool   now({}) → 2026-12-07 20:10 UTC" in lines[3] and "replayed" not in lines[3]
    assert lines[4].startswith("error: crashed: ") and "the clock broke" in lines[4]
    assert lines[5].strip() == "(--full for the whole error)"
    full = runner.invoke(app, ["show", "r1", "-c", str(config), "--full"]).output
    assert "second line of the story" in full


async def _record_compactions(url: str) -> None:
    store = await open_store(url)
    try:
        await store.create_run("assistant", "Research", run_id="r2")
        epoch = await store.claim_run("r2", "node")
        meta = {
            "compact": "summarize",
            "model": "anthropic:claude-haiku-4-5",
            "folded": 64,
            "chunk": 0,
            "lines": 64,
            "tokens_before": 160_512,
            "fingerprint": "ab" * 32,
        }
        response = {
            "text": "Looked up 63 topics; ORD-1 was created.",
            "tool_calls": [],
            "usage": {"input_tokens": 41_000, "output_tokens": 300},
            "model": "anthropic:claude-haiku-4-5",
        }
        await store.record_step(
            "r2", 0, epoch, kind="compact", phase="done", name="anthropic:claude-haiku-4-5",
            request={"v": 2, "skeleton": meta, "lists": {}}, response=response, tokens_in=41_000,
            tokens_out=300, cost_usd=0.0425,
        )  # fmt: skip
        trim = {"compact": "trim", "folded": 12, "pinned": 2, "tokens_before": 161_000}
        await store.record_step(
            "r2", 1, epoch, kind="compact", phase="done", name="trim",
            request={"v": 2, "skeleton": trim, "lists": {}}, response={"trimmed": 12, "kept": 9},
        )  # fmt: skip
        await store.update_run("r2", status="succeeded", output="ok", epoch=epoch)
    finally:
        await store.close()


def test_show_prints_a_compaction_with_what_it_folded_and_what_it_cost(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path / "co")]).exit_code == 0
    config = tmp_path / "co" / "beamish.toml"
    asyncio.run(_record_compactions(load_config(config).store_url))
    result = runner.invoke(app, ["show", "r2", "-c", str(config), "--full"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2].lstrip().startswith("#0   compact anthropic:claude-haiku-4-5(")
    assert '"folded": 64' in lines[2] and '"tokens_before": 160512' in lines[2]
    assert "in 41000 out 300  $0.042500  → Looked up 63 topics; ORD-1 was created." in lines[2]
    assert lines[3].lstrip().startswith("#1   compact trim(")
    assert '"pinned": 2' in lines[3] and '"trimmed": 12' in lines[3]


DEADLINE = 1_796_000_000.0  # epoch seconds, as a run's meta keeps it


async def _record_deadlines(url: str) -> None:
    store = await open_store(url)
    try:
        await store.create_run("assistant", "Post it", run_id="due", meta={"deadline": DEADLINE})
        await store.create_run("assistant", "Post it", run_id="whenever")
    finally:
        await store.close()


def test_show_puts_a_runs_deadline_in_its_header_and_none_when_it_has_none(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path / "co")]).exit_code == 0
    config = tmp_path / "co" / "beamish.toml"
    asyncio.run(_record_deadlines(load_config(config).store_url))
    due = runner.invoke(app, ["show", "due", "-c", str(config)])
    assert due.exit_code == 0, due.output
    shown = datetime.fromtimestamp(DEADLINE).strftime("%Y-%m-%d %H:%M:%S")
    assert due.output.splitlines()[0].endswith(f"  deadline {shown}")
    whenever = runner.invoke(app, ["show", "whenever", "-c", str(config)])
    assert whenever.exit_code == 0 and "deadline" not in whenever.output.splitlines()[0]
