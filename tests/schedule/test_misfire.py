"""The misfire policy as a pure decision: on-time ticks fire, misfired ones follow the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beamish.schedule import Schedule
from beamish.schedule._misfire import decide

DAY0 = datetime(2026, 6, 1, 14, tzinfo=UTC)


def ticks_after_three_days_down(schedule: Schedule) -> tuple[list[datetime], datetime]:
    """Down from just before day 0's 14:00 until day 3 at 14:30: days 0-3 at 14:00 are pending."""
    now = DAY0 + timedelta(days=3, minutes=30)
    return schedule.fires_between(DAY0 - timedelta(minutes=1), now), now


def test_policy_once_runs_only_the_latest_missed_tick() -> None:
    s = Schedule("0 14 * * *", misfire="once", grace_s=60)
    nominals, now = ticks_after_three_days_down(s)
    decisions = decide(s, "post", nominals, now)
    assert [d.action for d in decisions] == ["missed", "missed", "missed", "fire"]
    assert decisions[-1].nominal == DAY0 + timedelta(days=3)
    assert decisions[-1].late_s == 30 * 60


def test_policy_skip_runs_none_of_the_missed_ticks() -> None:
    s = Schedule("0 14 * * *", misfire="skip", grace_s=60)
    nominals, now = ticks_after_three_days_down(s)
    assert [d.action for d in decide(s, "post", nominals, now)] == ["missed"] * 4


def test_policy_all_runs_every_missed_tick() -> None:
    s = Schedule("0 14 * * *", misfire="all", grace_s=60)
    nominals, now = ticks_after_three_days_down(s)
    assert [d.action for d in decide(s, "post", nominals, now)] == ["fire"] * 4


def test_a_tick_within_the_grace_window_fires_whatever_the_policy() -> None:
    for policy in ("once", "skip", "all"):
        s = Schedule("0 14 * * *", misfire=policy, grace_s=3600)  # type: ignore[arg-type]
        nominals, now = ticks_after_three_days_down(s)
        actions = [d.action for d in decide(s, "post", nominals, now)]
        assert actions[-1] == "fire", policy
        assert actions[:-1] == (["fire"] * 3 if policy == "all" else ["missed"] * 3), policy


def test_policy_once_does_not_add_a_catch_up_run_when_an_on_time_tick_covers_the_missed_ones() -> None:
    s = Schedule("*/10 * * * *", misfire="once", grace_s=300)
    now = DAY0 + timedelta(hours=1, minutes=2)
    nominals = s.fires_between(DAY0, now)
    decisions = decide(s, "sweep", nominals, now)
    assert [d.action for d in decisions].count("fire") == 1
    assert decisions[-1].action == "fire" and decisions[-1].reason == "on time"


def test_jitter_moves_the_due_time_and_lateness_is_measured_from_it() -> None:
    s = Schedule("0 14 * * *", jitter_s=600, grace_s=0)
    due = s.due_time("post", DAY0)
    (decision,) = decide(s, "post", [DAY0], due)
    assert decision.action == "fire" and decision.late_s == 0 and decision.due == due
