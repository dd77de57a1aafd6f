"""The claim transaction: a due tick is decided once, cluster-wide, by ``UNIQUE(schedule_id,
nominal_fire_time)``; its run and its event are written in the same transaction.

Also the re-claim of ticks whose dispatcher died between claim and hand-over, bounded by a number
of attempts after which the run is parked for a person.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from beamish._events import Event
from beamish._exceptions import ScheduleError
from beamish.agent._deadline import deadline_meta
from beamish.journal._eventlog import insert_event
from beamish.journal._payload import canonical, encode, open_envelope
from beamish.journal._runs import insert_run
from beamish.journal._sql import Row, SyncTx, for_update_skip_locked
from beamish.schedule._cron import Schedule
from beamish.schedule._misfire import Decision, decide

MAX_ALL_PER_PASS = 1000  # policy "all" after a long outage: catch up in bounded passes


@dataclass(frozen=True)
class Fired:
    """A tick claimed by this scheduler, to be dispatched as the run ``run_id``."""

    schedule_id: str
    nominal_fire_time: str
    run_id: str
    agent: str
    input: Any
    due_at: float


def run_id_for(schedule_id: str, nominal: datetime) -> str:
    """The deterministic run_id of a tick: ``schedule:<id>:<nominal UTC time, ISO 8601>``."""
    return f"schedule:{schedule_id}:{nominal_key(nominal)}"


def nominal_key(nominal: datetime) -> str:
    return nominal.astimezone(UTC).isoformat().replace("+00:00", "Z")


def claim(
    tx: SyncTx, now_ts: float, limit: int, owner: str, threshold: int
) -> tuple[list[Fired], list[Event], int]:
    """Claim (up to ``limit`` schedules') due ticks in this transaction; see the module docstring."""
    now = datetime.fromtimestamp(now_ts, UTC)
    rows = tx.fetchall(
        "SELECT schedule_id, agent, input, spec, cursor_at, next_nominal_at, following_at FROM schedules "
        "WHERE enabled = 1 AND next_due_at <= ? ORDER BY next_due_at LIMIT ?"
        + for_update_skip_locked(tx.dialect),
        (now_ts, limit),
    )
    fired: list[Fired] = []
    events: list[Event] = []
    for row in rows:
        _claim_one(tx, row, now, owner, threshold, fired, events)
    return fired, events, len(rows)


def _claim_one(
    tx: SyncTx, row: Row, now: datetime, owner: str, threshold: int, fired: list[Fired], events: list[Event]
) -> None:
    sid = str(row["schedule_id"])
    schedule = schedule_from_spec(str(row["spec"]))
    cursor = datetime.fromtimestamp(float(row["cursor_at"]), UTC)
    pending, upcoming, following = _due_ticks(schedule, sid, row, now)
    now_ts = now.timestamp()
    for d in decide(schedule, sid, pending, now):
        recorded = _record_decision(tx, row, d, owner, threshold, now_ts, schedule.deadline_s)
        if recorded is None:
            continue  # another scheduler decided this tick
        fire, event = recorded
        if fire is not None:
            fired.append(fire)
        events.append(event)
    last = pending[-1] if pending else cursor
    nxt = upcoming if upcoming is not None else schedule.next_fire(last)
    tx.execute(
        "UPDATE schedules SET cursor_at = ?, next_due_at = ?, next_nominal_at = ?, following_at = ?, "
        "updated_at = ? WHERE schedule_id = ?",
        (last.timestamp(), schedule.due_time(sid, nxt).timestamp(), nxt.timestamp(),
         None if following is None else following.timestamp(), now_ts, sid),
    )  # fmt: skip


def _due_ticks(
    schedule: Schedule, sid: str, row: Row, now: datetime
) -> tuple[list[datetime], datetime | None, datetime | None]:
    """The ticks due now, the first tick not yet due (it sets ``next_due_at``) and the one after it
    when known. The usual case, one due tick, was precomputed by the last pass and costs no cron walk."""
    stored_next, stored_following = row["next_nominal_at"], row["following_at"]
    if (
        stored_next is not None
        and stored_following is not None
        and float(stored_next) > float(row["cursor_at"])
        and schedule.due_time(sid, utc(stored_following)) > now
    ):
        return [utc(stored_next)], utc(stored_following), None
    pending: list[datetime] = []
    ticks = schedule.iter_fires(datetime.fromtimestamp(float(row["cursor_at"]), UTC))
    for nominal in ticks:
        if nominal > now or schedule.due_time(sid, nominal) > now:
            return pending, nominal, next(ticks, None)
        pending.append(nominal)
        if schedule.misfire == "all" and len(pending) >= MAX_ALL_PER_PASS:
            break
    return pending, None, None


def _record_decision(
    tx: SyncTx, row: Row, d: Decision, owner: str, threshold: int, now_ts: float, deadline_s: float | None
) -> tuple[Fired | None, Event] | None:
    """Claim one tick's row (``None`` when another scheduler already decided it); a fired tick also
    inserts its run in the same transaction, so a tick is exactly one run."""
    sid = str(row["schedule_id"])
    key = nominal_key(d.nominal)
    rid = run_id_for(sid, d.nominal) if d.action == "fire" else None
    status = "claimed" if d.action == "fire" else "missed"
    won = tx.execute(
        "INSERT INTO schedule_fires (schedule_id, nominal_fire_time, nominal_at, due_at, action, "
        "status, run_id, agent, input, reason, claimed_by, claimed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (schedule_id, nominal_fire_time) DO NOTHING",
        (sid, key, d.nominal.timestamp(), d.due.timestamp(), d.action, status, rid,
         row["agent"], row["input"], d.reason, owner, now_ts),
    )  # fmt: skip
    if won != 1:
        return None
    data = {"nominal": key, "due_at": d.due.timestamp(), "late_s": round(d.late_s, 6), "reason": d.reason}
    fire = None
    if rid is not None:
        fire = Fired(sid, key, rid, str(row["agent"]), _input(row["input"]), d.due.timestamp())
        _insert_run(tx, fire, threshold, now_ts, deadline_meta(d.nominal.timestamp(), deadline_s))
        event = Event("schedule.fired", sid, {**data, "run_id": rid, "agent": fire.agent}, now_ts)
    else:
        event = Event("schedule.missed", sid, data, now_ts)
    insert_event(tx, event)
    return fire, event


def reclaim_stale(
    tx: SyncTx, now_ts: float, owner: str, lease_s: float, max_attempts: int
) -> tuple[list[Fired], list[Event]]:
    """Take over claims whose dispatcher is gone (claimed over ``lease_s`` ago); park a tick once
    it was handed out ``max_attempts`` times."""
    rows = tx.fetchall(
        "SELECT schedule_id, nominal_fire_time, run_id, agent, input, due_at, attempts "
        "FROM schedule_fires WHERE status = 'claimed' AND claimed_at < ? ORDER BY claimed_at LIMIT 500"
        + for_update_skip_locked(tx.dialect),
        (now_ts - lease_s,),
    )
    out: list[Fired] = []
    events: list[Event] = []
    for r in rows:
        key = (r["schedule_id"], r["nominal_fire_time"])
        if int(r["attempts"]) >= max_attempts:
            events.append(_park(tx, r, now_ts))
            continue
        tx.execute(
            "UPDATE schedule_fires SET claimed_by = ?, claimed_at = ?, attempts = attempts + 1 "
            "WHERE schedule_id = ? AND nominal_fire_time = ?",
            (owner, now_ts, *key),
        )
        out.append(
            Fired(
                str(r["schedule_id"]),
                str(r["nominal_fire_time"]),
                str(r["run_id"]),
                str(r["agent"]),
                _input(r["input"]),
                float(r["due_at"]),
            )
        )
    return out, events


def _park(tx: SyncTx, row: Row, now_ts: float) -> Event:
    """Bounded re-dispatch: the tick is abandoned and its run waits for a person, not a loop."""
    tx.execute(
        "UPDATE schedule_fires SET status = 'abandoned' WHERE schedule_id = ? AND nominal_fire_time = ?",
        (row["schedule_id"], row["nominal_fire_time"]),
    )
    tx.execute(
        "UPDATE runs SET status = 'needs_attention', updated_at = ? WHERE run_id = ? AND status = 'queued'",
        (now_ts, row["run_id"]),
    )
    data = {
        "run_id": row["run_id"],
        "schedule_id": row["schedule_id"],
        "attempts": int(row["attempts"]),
        "why": "its hand-over to the agent kept failing",
    }
    event = Event("run.needs_attention", str(row["run_id"]), data, now_ts)
    insert_event(tx, event)
    return event


def _insert_run(tx: SyncTx, fire: Fired, threshold: int, now: float, deadline: dict[str, Any]) -> None:
    """The tick's run, created with its claim (the journal's run row; an existing run_id wins);
    with the schedule's deadline, the time it must be done by."""
    meta = {"schedule_id": fire.schedule_id, "nominal": fire.nominal_fire_time, "due_at": fire.due_at}
    meta.update(deadline)
    body = encode(tx, fire.run_id, fire.input, threshold, now, f"schedule {fire.schedule_id!r} input")
    insert_run(tx, fire.run_id, fire.agent, body, canonical(meta, "run meta"), "queued", now)


def utc(ts: Any) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


@functools.lru_cache(maxsize=4096)
def schedule_from_spec(spec: str) -> Schedule:
    """Parsed once per distinct spec: a thousand schedules at ``0 14 * * *`` share one Schedule."""
    return Schedule.from_json(json.loads(spec))


def _input(text: str) -> Any:
    return open_envelope(text, "schedule input", error=ScheduleError)
