"""Run deadlines: a run may have to be done by a time (a schedule's ``deadline`` after its nominal
time, ``submit(..., deadline=300)``), kept in its meta as ``deadline`` (epoch seconds).

While it runs, a near deadline makes the run leave a failing model for its fallback sooner
(:mod:`beamish.agent._fallback`). A run that ends after it — answered late, or failed with its
providers down — is parked as ``needs_attention`` with the reason, and its ``run.needs_attention``
event goes to the alert sinks: a scheduled run is never silently late. A run that has not ended
when its deadline passes is not left to be found out at its end (:func:`sweep_overdue`): one still
queued is parked as ``needs_attention`` (nobody started it in time; a person may retry it), and one
still running raises a ``run.overdue`` alert once.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from beamish._events import Event
from beamish._exceptions import DeadlineMissed, SpecError
from beamish._exits import Crashed
from beamish.journal._eventlog import insert_event
from beamish.journal._payload import canonical, masked

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_deadline(value: Any, where: str = "deadline") -> float | None:
    """A deadline after the nominal time: seconds, or ``"90s"``, ``"5m"``, ``"2h"`` (``None``: none);
    a ``SpecError`` naming ``where`` unless it is above zero."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(
            f"{where}={value!r} is invalid: expected a duration above zero such as '5m', '90s' or 300"
        )
    return seconds


def deadline_meta(nominal: float, deadline_s: float | None) -> dict[str, Any]:
    """The run meta a deadline puts there: the time itself and how it was set."""
    if deadline_s is None:
        return {}
    return {"deadline": nominal + deadline_s, "deadline_s": deadline_s}


def deadline_of(meta: dict[str, Any]) -> float | None:
    value = meta.get("deadline")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def missed(meta: dict[str, Any], now: float, what: str) -> DeadlineMissed | None:
    """The error for a run that ``what`` (``"answered"``, ``"failed: …"``) at ``now``, past its
    deadline; None when it has none or is in time."""
    deadline = deadline_of(meta)
    if deadline is None or now <= deadline:
        return None
    late = now - deadline
    allowance = meta.get("deadline_s")
    after = f" ({_span(float(allowance))} after it was due)" if isinstance(allowance, int | float) else ""
    return DeadlineMissed(
        f"the run missed its deadline of {_iso(deadline)}{after}: it {what} {_span(late)} late",
        deadline=deadline,
        late_s=late,
    )


def missed_event(run_id: str, agent: str, error: DeadlineMissed, now: float) -> Event:
    """``run.needs_attention`` for a missed deadline: critical by default in the alert routes."""
    data = {
        "run_id": run_id,
        "agent": agent,
        "why": str(error),
        "deadline": error.deadline,
        "late_s": round(error.late_s, 3),
    }
    return Event("run.needs_attention", run_id, data, at=now)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f}s"


#: Queued and running runs with a deadline in their meta (the meta is JSON text on both backends).
_PENDING = (
    "SELECT run_id, agent, status, meta FROM runs WHERE status IN ('queued', 'running') "
    "AND meta LIKE '%\"deadline\"%'"
)


async def sweep_overdue(store: Any, now: float) -> list[Event]:
    """Runs whose deadline passed before they ended: a queued one is parked as ``needs_attention``
    (``run.needs_attention``), a running one gets ``run.overdue`` once (``overdue_at`` in its meta).
    Each change is conditional on the row as read, so nodes sweeping together act once."""

    found: list[Event] = await store.run(lambda tx: sweep_overdue_in(tx, now))
    return found


def sweep_overdue_in(tx: Any, now: float) -> list[Event]:
    """:func:`sweep_overdue` inside the caller's transaction ``tx`` (the node's poller shares one)."""
    events: list[Event] = []
    for row in tx.fetchall(_PENDING):
        meta = json.loads(row["meta"])
        deadline = deadline_of(meta)
        if deadline is None or now <= deadline or "overdue_at" in meta:
            continue
        rid, agent = str(row["run_id"]), str(row["agent"])
        if row["status"] == "queued":
            error = missed(meta, now, "had not started")
            assert error is not None
            reason = masked(Crashed(error).to_json(), "exit reason")
            if tx.execute(
                "UPDATE runs SET status = 'needs_attention', reason = ?, updated_at = ? "
                "WHERE run_id = ? AND status = 'queued'",
                (reason, now, rid),
            ):
                events.append(missed_event(rid, agent, error, now))
            continue
        stamped = canonical({**meta, "overdue_at": now}, "run meta")
        if tx.execute(
            "UPDATE runs SET meta = ? WHERE run_id = ? AND status = 'running' AND meta = ?",
            (stamped, rid, row["meta"]),
        ):
            late = missed(meta, now, "is still running")
            assert late is not None
            data = {"run_id": rid, "agent": agent, "why": str(late), "deadline": late.deadline}
            events.append(Event("run.overdue", rid, data, at=now))
    for event in events:
        insert_event(tx, event)
    return events
