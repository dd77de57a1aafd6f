"""Status, the dashboard and config validation answer "when does it fire next?" as the scheduler
does: daylight saving by Debian cron's rules and the schedule's jitter, never raw croniter's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _sched_agents import RecordingAgents, create_tables

from beamish import ConfigError
from beamish.company import CompanyConfig, load_config_data
from beamish.company._company import Company
from beamish.company._config import schedule_entries
from beamish.company._tree import CompanyParts
from beamish.company._view import next_fire, next_fire_at
from beamish.journal import open_store
from beamish.schedule import Schedule, Scheduler
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)

NY = "America/New_York"

#: (cron, jitter_s, now): around New York's changes of 2026 (spring 8 March, autumn 1 November).
CASES = [
    # 01:45 EDT, just after the first 01:30: a fixed-time job does not fire again at 01:30 EST
    # (raw croniter says it does, an hour later); the next fire is the next day's.
    ("30 1 * * *", 0.0, datetime(2026, 11, 1, 5, 45, tzinfo=UTC)),
    ("30 1 * * *", 900.0, datetime(2026, 11, 1, 5, 45, tzinfo=UTC)),
    # a wildcard job follows real time: the repeated 01:30 does fire
    ("*/30 1 * * *", 0.0, datetime(2026, 11, 1, 5, 45, tzinfo=UTC)),
    # the skipped 02:30 of the spring change runs as the clock jumps, at 03:00 EDT
    ("30 2 * * *", 0.0, datetime(2026, 3, 7, 17, 0, tzinfo=UTC)),
    ("30 2 * * *", 1800.0, datetime(2026, 3, 7, 17, 0, tzinfo=UTC)),
]


def config(tmp_path: Path, cron: str, jitter_s: float) -> CompanyConfig:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    agent = {
        "instructions": "Report.",
        "model": "scripted:ceo.json",
        "price": {"input_per_mtok": 0, "output_per_mtok": 0},
        "schedules": [{"id": "report", "cron": cron, "task": "report", "tz": NY, "jitter_s": jitter_s}],
    }
    return load_config_data({"agents": {"ceo": agent}}, tmp_path / "beamish.toml")


async def scheduler_next_due(tmp_path: Path, cfg: CompanyConfig, now: datetime) -> datetime:
    """What the scheduler itself stores as the schedule's next due time, on a clock at ``now``."""
    clock = FakeClock()
    clock.set_wall(now.timestamp())
    store = await open_store(f"sqlite:///{tmp_path / 'sched.db'}", clock=clock)
    try:
        await create_tables(store)
        scheduler = Scheduler(store, RecordingAgents(store), clock=clock)
        await scheduler.sync((sid, s, agent, task) for sid, s, agent, task in schedule_entries(cfg))
        row = await store.fetchone("SELECT next_due_at FROM schedules WHERE schedule_id = 'report'")
        assert row is not None
        return datetime.fromtimestamp(float(row["next_due_at"]), UTC)
    finally:
        await store.close()


@pytest.mark.parametrize(("cron", "jitter_s", "now"), CASES)
async def test_status_and_the_dashboard_show_the_schedulers_next_fire_across_daylight_saving(
    tmp_path: Path, cron: str, jitter_s: float, now: datetime
) -> None:
    cfg = config(tmp_path, cron, jitter_s)
    due = await scheduler_next_due(tmp_path, cfg, now)
    shown = f"{due.astimezone(Schedule(cron, tz=NY).zone):%Y-%m-%d %H:%M} {NY}"

    # a stopped node's status and dashboard (the skeleton read from the config)
    at = next_fire_at(cfg, "ceo", now.timestamp())
    assert at is not None and at.timestamp() == due.timestamp()  # == of a folded time is False
    assert next_fire(cfg, "ceo", now.timestamp()) == shown

    # a running node's status and dashboard, by the clock its scheduler fires by
    clock = FakeClock()
    clock.set_wall(now.timestamp())
    company = Company(cfg, parts=CompanyParts(schedule_clock=clock), control=False)
    [ceo] = [n for n in (await company.tree()).walk() if n.id == "ceo"]
    assert ceo.next_schedule == shown


def test_the_next_fire_moves_on_once_a_tick_has_passed(tmp_path: Path) -> None:
    cfg = config(tmp_path, "0 14 * * *", 0.0)
    before = datetime(2026, 6, 1, 17, 0, tzinfo=UTC)  # 13:00 EDT
    after = datetime(2026, 6, 1, 18, 30, tzinfo=UTC)  # 14:30 EDT
    assert next_fire(cfg, "ceo", before.timestamp()) == f"2026-06-01 14:00 {NY}"
    assert next_fire(cfg, "ceo", after.timestamp()) == f"2026-06-02 14:00 {NY}"


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 0 31 2 *", "never matches a date"),  # croniter calls it valid; the scheduler cannot run it
        ("0 14 * * * *", "expected 5 fields"),  # a seconds field croniter accepts and cron has not
        ("every day", "expected 5 fields"),
    ],
)
def test_config_validation_refuses_what_the_scheduler_would_refuse(
    tmp_path: Path, cron: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, cron, 0.0)
    [line] = str(caught.value).splitlines()
    assert "agents.ceo.schedules[0].cron" in line and problem in line


def test_config_validation_accepts_the_schedulers_aliases(tmp_path: Path) -> None:
    cfg = config(tmp_path, "@daily", 0.0)
    [(sid, schedule, agent, _)] = schedule_entries(cfg)
    assert (sid, schedule.cron, agent) == ("report", "@daily", "ceo")
