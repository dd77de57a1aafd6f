"""Properties of fire times over random expressions, zones and windows (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamish.schedule import Schedule

ZONES = [
    "America/New_York",
    "Europe/Lisbon",
    "Australia/Lord_Howe",  # a 30-minute change
    "America/Santiago",
    "Europe/London",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
]
minutes = st.sampled_from(["0", "30", "15,45", "0,30", "5", "59"])
hours = st.sampled_from(["0", "1", "2", "3", "1,2", "2-4", "23", "0-3"])
days = st.sampled_from(["*", "1", "*", "15"])
weekdays = st.sampled_from(["*", "*", "0", "1-5"])
fixed_crons = st.builds(lambda m, h, d, w: f"{m} {h} {d} * {w}", minutes, hours, days, weekdays)
wild_crons = st.sampled_from(["*/15 * * * *", "0 * * * *", "30 * * * *", "*/7 * * * *", "0 */2 * * *"])
# Windows around real transitions are where things go wrong, so most starts sit near one.
TRANSITIONS = [
    datetime(2026, 3, 8, 6, tzinfo=UTC),
    datetime(2026, 11, 1, 5, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 4, 5, 14, tzinfo=UTC),
    datetime(2026, 9, 6, 3, tzinfo=UTC),
]
offsets = st.integers(min_value=-36 * 60, max_value=12 * 60)
starts = st.builds(lambda base, off: base + timedelta(minutes=off), st.sampled_from(TRANSITIONS), offsets)
zones = st.sampled_from(ZONES)


def local_minute(fire: datetime) -> tuple[int, int, int, int, int]:
    return (fire.year, fire.month, fire.day, fire.hour, fire.minute)


@pytest.mark.timeout(60)
@settings(max_examples=150, deadline=None)
@given(cron=fixed_crons, tz=zones, start=starts, span_h=st.integers(min_value=1, max_value=96))
def test_fixed_time_fires_strictly_increase_and_never_share_a_local_minute(
    cron: str, tz: str, start: datetime, span_h: int
) -> None:
    out = Schedule(cron, tz).fires_between(start, start + timedelta(hours=span_h))
    utc = [f.astimezone(UTC) for f in out]
    assert utc == sorted(set(utc)), "fire times must strictly increase"
    minutes_seen = [local_minute(f.astimezone(ZoneInfo(tz))) for f in out]
    assert len(minutes_seen) == len(set(minutes_seen)), f"two fires in one local minute: {out}"
    assert all(start < f <= start + timedelta(hours=span_h) for f in out)


@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=None)
@given(cron=wild_crons, tz=zones, start=starts, span_h=st.integers(min_value=1, max_value=48))
def test_wildcard_fires_strictly_increase_and_match_their_local_time(
    cron: str, tz: str, start: datetime, span_h: int
) -> None:
    s = Schedule(cron, tz)
    out = s.fires_between(start, start + timedelta(hours=span_h))
    utc = [f.astimezone(UTC) for f in out]
    assert utc == sorted(set(utc))
    minute_field, hour_field = cron.split()[:2]
    for f in out:  # a wildcard job never fires at a time its expression does not name
        if minute_field.startswith("*/"):
            assert f.minute % int(minute_field[2:]) == 0
        elif minute_field != "*":
            assert f.minute == int(minute_field)
        if hour_field.startswith("*/"):
            assert f.hour % int(hour_field[2:]) == 0


@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=None)
@given(
    cron=st.one_of(fixed_crons, wild_crons),
    tz=zones,
    start=starts,
    cut_min=st.integers(min_value=0, max_value=48 * 60),
)
def test_adjacent_windows_compose(cron: str, tz: str, start: datetime, cut_min: int) -> None:
    s = Schedule(cron, tz)
    mid = start + timedelta(minutes=cut_min)
    end = start + timedelta(hours=48)
    assert s.fires_between(start, mid) + s.fires_between(mid, end) == s.fires_between(start, end)
