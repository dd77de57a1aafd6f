"""History per schedule: every tick, when it was due, whether it fired, how late, and how its run ended.

Read straight from ``schedule_fires`` joined to ``runs``, so the answer is the same on every node and
survives restarts: the store is the only record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from beamish.journal._sql import Row, SyncTx

#: Run statuses that count as an outcome; anything else is still pending.
_SUCCEEDED = "succeeded"
_FAILED = ("failed", "needs_attention")


@dataclass(frozen=True)
class FireRecord:
    """One tick of a schedule.

    ``action`` is ``"fire"`` or ``"missed"``; ``late_s`` is dispatch time minus due time (None until
    dispatched, or for a missed tick); ``outcome`` is the run's status (``"succeeded"``, ``"failed"``,
    ``"running"`` …), ``"missed"`` for a missed tick, ``"claimed"`` before its run was created, or
    ``"pruned"`` once the journal dropped its run.
    """

    schedule_id: str
    nominal_fire_time: str
    due_at: float
    action: str
    run_id: str | None
    late_s: float | None
    outcome: str
    reason: str


@dataclass(frozen=True)
class SuccessRate:
    """Counts over a schedule's decided ticks; ``rate`` = succeeded / (succeeded + failed + missed)."""

    due: int
    succeeded: int
    failed: int
    missed: int
    pending: int

    @property
    def rate(self) -> float | None:
        """None when no tick has an outcome yet."""
        finished = self.succeeded + self.failed + self.missed
        return None if finished == 0 else self.succeeded / finished


_SELECT = (
    "SELECT f.schedule_id, f.nominal_fire_time, f.due_at, f.action, f.status, f.run_id, f.reason, "
    "f.dispatched_at, r.status AS run_status FROM schedule_fires f LEFT JOIN runs r ON r.run_id = f.run_id "
)


def _record(row: Row) -> FireRecord:
    dispatched = row["dispatched_at"]
    if row["action"] == "missed":
        outcome = "missed"
    elif row["run_status"] is None:
        outcome = "claimed" if row["status"] == "claimed" else "pruned"
    else:
        outcome = str(row["run_status"])
    return FireRecord(
        schedule_id=str(row["schedule_id"]),
        nominal_fire_time=str(row["nominal_fire_time"]),
        due_at=float(row["due_at"]),
        action=str(row["action"]),
        run_id=row["run_id"],
        late_s=None if dispatched is None else max(0.0, float(dispatched) - float(row["due_at"])),
        outcome=outcome,
        reason=str(row["reason"]),
    )


def fire_history(tx: SyncTx, schedule_id: str, limit: int = 50) -> list[FireRecord]:
    rows = tx.fetchall(
        _SELECT + "WHERE f.schedule_id = ? ORDER BY f.nominal_at DESC LIMIT ?", (schedule_id, limit)
    )
    return [_record(r) for r in rows]


def success_rate(tx: SyncTx, schedule_id: str, since: float | None = None) -> SuccessRate:
    sql = _SELECT + "WHERE f.schedule_id = ?"
    params: list[object] = [schedule_id]
    if since is not None:
        sql += " AND f.nominal_at >= ?"
        params.append(since)
    records = [_record(r) for r in tx.fetchall(sql, params)]
    succeeded = sum(1 for r in records if r.outcome == _SUCCEEDED)
    failed = sum(1 for r in records if r.outcome in _FAILED)
    missed = sum(1 for r in records if r.outcome == "missed")
    return SuccessRate(
        due=len(records),
        succeeded=succeeded,
        failed=failed,
        missed=missed,
        pending=len(records) - succeeded - failed - missed,
    )


@dataclass(frozen=True)
class ScheduleInfo:
    """A stored schedule as ``beamish schedules list`` shows it."""

    schedule_id: str
    agent: str
    spec: dict[str, object]
    enabled: bool
    next_due_at: float | None
    rate: SuccessRate


def list_schedules(tx: SyncTx) -> list[ScheduleInfo]:

    rows = tx.fetchall(
        "SELECT schedule_id, agent, spec, enabled, next_due_at FROM schedules ORDER BY schedule_id"
    )
    return [
        ScheduleInfo(
            schedule_id=str(r["schedule_id"]),
            agent=str(r["agent"]),
            spec=dict(json.loads(r["spec"])),
            enabled=bool(r["enabled"]),
            next_due_at=None if r["next_due_at"] is None else float(r["next_due_at"]),
            rate=success_rate(tx, str(r["schedule_id"])),
        )
        for r in rows
    ]


def prune_fires(tx: SyncTx, before: float) -> int:
    """Forget decided ticks due before ``before`` (epoch seconds): missed ones, and fired ones whose run
    has finished or is gone. A tick still claimed, or whose run is live, is kept. Returns how many."""
    return tx.execute(
        "DELETE FROM schedule_fires WHERE due_at < ? AND (action = 'missed' OR (status = 'dispatched' AND "
        "NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = schedule_fires.run_id AND r.status NOT IN "
        "('succeeded', 'failed'))))",
        (before,),
    )
