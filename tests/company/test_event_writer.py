"""Runtime events the company could not store at stop are reported (an error line and an
``events.unstored`` event to every sink), never dropped silently."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from beamish._events import Event
from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._eventwriter import EventWriter
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(45)


async def test_a_company_whose_event_writes_fail_says_so_at_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    agent = {
        "instructions": "Hi.",
        "model": "scripted:ceo.json",
        "price": {"input_per_mtok": 0, "output_per_mtok": 0},
    }
    config = load_config_data({"agents": {"ceo": agent}}, tmp_path / "beamish.toml")
    seen: list[Event] = []
    company = Company(config, sinks=[seen.append], control=False)
    await company.start()
    # the journal loses its events table under the running company: every later write fails
    await company.store.execute("ALTER TABLE events RENAME TO events_elsewhere")
    with caplog.at_level(logging.ERROR, logger="beamish.company"):
        await company.stop()  # stopping the tree emits child.exited events the writer cannot store

    [report] = [e for e in seen if e.kind == "events.unstored"]
    assert report.data["count"] >= 1
    assert "failed to write" in report.data["reason"] and "events" in report.data["reason"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"{report.data['count']} lifecycle event" in line and "not stored in the journal" in line


async def test_a_flush_that_runs_out_of_time_reports_what_it_left_unwritten(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'j.db'}")
    blocker = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the journal's write lock
        writer = EventWriter(flush_s=0.2)
        writer.start(store)
        for i in range(3):
            writer.put(Event("child.started", f"worker-{i}"))
        unstored = await writer.stop()
        blocker.execute("COMMIT")
    finally:
        blocker.close()
        await store.close()
    assert unstored is not None
    assert unstored.count == 3  # one cut off mid-write, two never taken from the queue
    assert unstored.reason == "3 unwritten when the flush stopped after 0.2s"


async def test_a_clean_flush_reports_nothing(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        writer = EventWriter()
        writer.start(store)
        writer.put(Event("child.started", "worker"))
        assert await writer.stop() is None
        assert [e.subject for _, e in await store.events()] == ["worker"]
    finally:
        await store.close()
