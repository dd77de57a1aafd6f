"""The digest: what it counts, ``beamish digest``, and the morning mail on its cron (text + HTML)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _receivers import smtp_server
from typer.testing import CliRunner

from beamish._events import Event
from beamish._exits import Crashed
from beamish.agent._gates import GatePolicy, open_gate
from beamish.cli import app
from beamish.company import load_config_data
from beamish.company._alerter import Alerter
from beamish.company._digest import build_digest, digest_builder
from beamish.company._sinks import EmailSink
from beamish.journal import open_store
from beamish.schedule._cron import Schedule
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)
AGENT = {"instructions": "x", "model": "anthropic:claude-sonnet-4-5", "budget": {"per_day_usd": 2.0}}


TOML = """
[store]
url = "sqlite:///j.db"

[agents.marketing]
instructions = "x"
model = "anthropic:claude-sonnet-4-5"
budget = { per_day_usd = 2.0 }
"""


async def _company(tmp_path: Path, clock: Any = None) -> tuple[Any, Any]:
    (tmp_path / "b.toml").write_text(TOML)
    cfg = load_config_data(
        {"agents": {"marketing": AGENT}, "store": {"url": "sqlite:///j.db"}}, tmp_path / "b.toml"
    )
    store = await open_store(cfg.store_url, **({} if clock is None else {"clock": clock}))
    for run_id, status in (("a", "succeeded"), ("b", "succeeded"), ("c", "failed")):
        await store.create_run("marketing", "t", run_id=run_id)
        reason = Crashed("the printer caught fire") if status == "failed" else None
        await store.update_run(run_id, status=status, reason=reason)
    await store.create_run("marketing", "t", run_id="d")
    epoch = await store.claim_run("d", "test")
    policy = GatePolicy()
    await open_gate(
        store,
        run_id="d",
        epoch=epoch,
        seq=1,
        kind="approval",
        tool="post",
        args={"text": "hi"},
        policy=policy,
    )
    await store.append_event(
        Event("agent.upgraded", "marketing", {"version": 2, "previous": 1, "reason": "tone"})
    )
    return cfg, store


async def test_the_digest_counts_runs_failures_waiting_and_upgrades(tmp_path: Path) -> None:
    cfg, store = await _company(tmp_path)
    try:
        digest = await build_digest(store, cfg, time.time() - 3600, time.time())
    finally:
        await store.close()
    assert digest.runs == {"succeeded": 2, "failed": 1, "awaiting_approval": 1}
    assert [(f["run_id"], "printer caught fire" in f["reason"]) for f in digest.failures] == [("c", True)]
    assert digest.spend == [{"agent": "marketing", "spent_usd": 0.0, "cap_per_day_usd": 2.0}]
    assert [w["what"] for w in digest.waiting] == ['post({"text": "hi"})']
    assert digest.upgrades == [{"kind": "upgraded", "agent": "marketing", "detail": "v1 → v2 (tone)"}]
    text = digest.text()
    assert "1 awaiting_approval, 1 failed, 2 succeeded" in text and "marketing: $0.0000 of $2.00/day" in text
    assert "<h3>Waiting for you</h3>" in digest.html()


def test_beamish_digest_prints_the_same(tmp_path: Path) -> None:
    cfg, store = asyncio.run(_company(tmp_path))
    asyncio.run(store.close())
    result = CliRunner().invoke(app, ["digest", "-c", str(cfg.path), "--since", "24h"])
    assert result.exit_code == 0, result.output
    assert "Waiting for you" in result.output and 'post({"text": "hi"})' in result.output
    bad = CliRunner().invoke(app, ["digest", "-c", str(cfg.path), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since: expected an age" in bad.output


async def test_the_digest_is_mailed_once_when_its_cron_fires(tmp_path: Path) -> None:
    start = datetime(2026, 12, 7, 7, 0, tzinfo=UTC).timestamp()
    clock = FakeClock(wall_start=start)
    cfg, store = await _company(tmp_path, clock)
    controller, box = smtp_server(tmp_path)
    try:
        sink = EmailSink(
            "mail", "127.0.0.1", controller.port, "b@example.com", ["o@example.com"],
            username="beamish", password="s3cret",
        )  # fmt: skip
        alerter = Alerter(
            store, [], [sink], digests=[("mail", Schedule("0 8 * * *"))], build=digest_builder(cfg)
        )
        assert not await alerter.send_digest_if_due("mail", Schedule("0 8 * * *"))  # starts the clock
        await alerter.one_pass()
        assert box.messages == [], "not before 08:00"
        clock.set_wall(start + timedelta(hours=1, minutes=1).total_seconds())
        await alerter.one_pass()
        await alerter.one_pass()
    finally:
        controller.stop()
        await store.close()
    (message,) = box.messages
    assert "Subject: beamish digest" in message
    assert "text/plain" in message and "text/html" in message
