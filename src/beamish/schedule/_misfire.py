"""What to do with ticks that are due: fire them, or record them as missed (the misfire policy).

Pure: given a schedule, the pending ticks and the time now, the same decision on every node, so the
scheduler only has to make the decision once per tick (the store's unique key sees to that).

A tick is *on time* when ``now`` is at most ``grace_s`` past its due time: it fires whatever the policy.
A tick later than that is *misfired* (the scheduler was down or stalled), and the policy decides:

* ``"skip"``: none of the misfired ticks runs; each is recorded as missed.
* ``"once"``: the misfired ticks collapse into one run, at the latest of them, unless an on-time tick
  follows them (that run covers the missed work); the others are recorded as missed.
* ``"all"``: every misfired tick runs, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from beamish.schedule._cron import Schedule

Action = Literal["fire", "missed"]


@dataclass(frozen=True)
class Decision:
    """One tick's fate: ``nominal`` (its identity), ``due`` (nominal plus jitter) and how late it is."""

    nominal: datetime
    due: datetime
    action: Action
    late_s: float
    reason: str


def decide(
    schedule: Schedule, schedule_id: str, nominals: Sequence[datetime], now: datetime
) -> list[Decision]:
    """Decide every tick in ``nominals`` (in order, all due by ``now``) under the schedule's policy."""
    ticks = [(n, schedule.due_time(schedule_id, n)) for n in nominals]
    late = [(now - due).total_seconds() for _, due in ticks]
    on_time = [lateness <= schedule.grace_s for lateness in late]
    covered_by_on_time = any(on_time)
    last_misfire = max((i for i, ok in enumerate(on_time) if not ok), default=-1)
    out: list[Decision] = []
    for i, (nominal, due) in enumerate(ticks):
        if on_time[i]:
            action: Action = "fire"
            reason = "on time"
        elif schedule.misfire == "all":
            action, reason = "fire", "misfired; policy all runs every missed tick"
        elif schedule.misfire == "skip":
            action, reason = "missed", "misfired; policy skip"
        elif i == last_misfire and not covered_by_on_time:
            action, reason = "fire", "misfired; policy once runs the latest missed tick"
        else:
            action, reason = "missed", "misfired; policy once collapsed it into a later run"
        out.append(Decision(nominal, due, action, max(0.0, late[i]), reason))
    return out
