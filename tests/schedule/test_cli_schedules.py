"""``beamish schedules list|history|prune`` on a company's store (no node needed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sched_agents import RecordingAgents, create_tables
from typer.testing import CliRunner

from beamish.cli import app
from beamish.company import load_config
from beamish.journal import open_store
from beamish.schedule import Schedule, Scheduler
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)
runner = CliRunner(env={"COLUMNS": "200"})
DAY0 = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


@pytest.fixture
def company(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--template", "solo", "--model", "anthropic"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "co" / "beamish.toml"
    url = load_config(config).store_url
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    async def fill() -> None:
        clock = FakeClock()
        clock.set_wall(DAY0.timestamp())
        store = await open_store(url, clock=clock)
        try:
            await create_tables(store)
            sched = Scheduler(store, RecordingAgents(store, fail={"cfo"}), clock=clock)
            await sched.add(
                "daily-post", Schedule("0 14 * * *", misfire="once", grace_s=60), "marketing", "post"
            )
            await sched.add("books", Schedule("0 * * * *"), "cfo", "reconcile")
            clock.set_wall((DAY0 + timedelta(days=2, hours=1, minutes=5)).timestamp())
            await sched.run_pass()
        finally:
            await store.close()

    asyncio.run(fill())
    return config


def test_list_shows_each_schedule_with_its_success_rate(company: Path) -> None:
    result = runner.invoke(app, ["schedules", "list", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert "daily-post" in result.output and "0 14 * * *" in result.output
    assert "33.3%" in result.output  # one run succeeded, two ticks missed under policy once
    assert "0.0%" in result.output  # the cfo's run failed


def test_history_lists_ticks_newest_first_with_outcomes(company: Path) -> None:
    result = runner.invoke(app, ["schedules", "history", "daily-post", "-c", str(company)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "2026-06" in line]
    assert "succeeded" in lines[0] and "2026-06-03T14:00:00Z" in lines[0]
    assert all("missed" in line for line in lines[1:3])


def test_history_of_an_unknown_schedule_exits_1_listing_the_configs_schedules(company: Path) -> None:
    result = runner.invoke(app, ["schedules", "history", "nope", "-c", str(company)])
    assert result.exit_code == 1
    assert "no schedule 'nope' in" in result.output
    assert "ceo-morning" in result.output and "improver-upgrade" in result.output


def test_history_of_a_configured_schedule_that_never_fired_says_so(company: Path) -> None:
    result = runner.invoke(app, ["schedules", "history", "ceo-morning", "-c", str(company)])
    assert result.exit_code == 1
    assert "no ticks recorded for schedule 'ceo-morning' yet" in result.output


def test_prune_forgets_old_finished_ticks_but_keeps_a_live_runs_tick(company: Path) -> None:
    url = load_config(company).store_url
    live = "schedule:daily-post:2026-06-03T14:00:00Z"

    async def count_and_mark_live() -> int:
        store = await open_store(url)
        try:
            await store.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (live,))
            row = await store.fetchone("SELECT COUNT(*) AS n FROM schedule_fires")
            return int(row["n"]) if row else 0
        finally:
            await store.close()

    total = asyncio.run(count_and_mark_live())
    result = runner.invoke(app, ["schedules", "prune", "--older-than", "1d", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert f"pruned {total - 1} schedule ticks" in result.output
    result = runner.invoke(app, ["schedules", "history", "daily-post", "-c", str(company)])
    assert live in result.output
    assert "2026-06-01T14:00:00Z" not in result.output
