"""The alert outbox: events routed to sinks as durable rows, then claimed and delivered.

``pump`` reads the events stored since the cursor and, in the same transaction, inserts one row per
sink whose route takes the event and advances the cursor, so an event is routed once whichever node
pumps and whenever a node dies. ``claim`` leases due rows to one deliverer (another node takes them
over once the lease lapses), so each alert is delivered at least once. Deduplication (one alert per
key and sink within its window), the rate limit and quiet hours (non-urgent alerts are held for
the digest) are decided here, on rows, so they hold across restarts and nodes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from beamish._events import Event
from beamish.journal._payload import canonical
from beamish.journal._sql import SyncTx

#: What is worth a person's attention by default, and how urgent each is.
DEFAULT_KINDS: dict[str, str] = {
    "approval.requested": "warning",
    "question.asked": "warning",
    "budget.exceeded": "warning",
    "loop.detected": "warning",
    "run.needs_attention": "critical",
    "run.overdue": "critical",
    "supervisor.escalated": "critical",
    "supervisor.auto_shutdown": "critical",
    "lease.lost": "critical",
    "breaker.opened": "warning",
    "memory.repaired": "warning",
}
SEVERITIES = ("info", "warning", "critical")
_CURSOR = "alerts"


@dataclass(frozen=True)
class Route:
    """Which events one sink takes, and how often: ``kinds`` (None: the defaults), ``agents``
    (None: all), the lowest ``min_severity``, the dedup window, a rate per minute and quiet hours
    (``(start_minute, end_minute)`` of the day in ``tz``; critical alerts are never held)."""

    sink: str
    kinds: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    min_severity: str = "info"
    dedup_window_s: float = 3600.0
    rate_per_minute: int = 30
    quiet: tuple[int, int] | None = None
    tz: str = "UTC"

    def severity(self, event: Event) -> str | None:
        """The event's severity for this sink, or None when the sink does not take it."""
        if self.kinds is None and event.kind not in DEFAULT_KINDS:
            return None
        if self.kinds is not None and event.kind not in self.kinds:
            return None
        agent = event.data.get("agent", event.subject)
        if self.agents is not None and agent not in self.agents:
            return None
        level = str(event.data.get("severity") or DEFAULT_KINDS.get(event.kind, "info"))
        if SEVERITIES.index(level) < SEVERITIES.index(self.min_severity):
            return None
        return level

    def is_quiet(self, at: float) -> bool:
        if self.quiet is None:
            return False
        local = datetime.fromtimestamp(at, ZoneInfo(self.tz))
        minute, (start, end) = local.hour * 60 + local.minute, self.quiet
        return start <= minute < end if start <= end else (minute >= start or minute < end)


def dedup_key(event: Event) -> str:
    """Alerts about the same thing share a key: the kind and what it is about (a gate, a run …)."""
    about = event.data.get("gate_id") or event.data.get("run_id") or event.data.get("agent") or event.subject
    return f"{event.kind}:{about}"


def pump(tx: SyncTx, routes: Sequence[Route], now: float, batch: int = 500) -> tuple[int, int]:
    """Route up to ``batch`` events stored since the cursor into the outbox (one transaction);
    ``(events read, rows inserted)``.

    A new outbox starts at the newest event: alerts are about what happens from now on."""
    # claim the cursor first: a second pump waits here, then reads the cursor the first advanced
    if tx.execute("UPDATE alert_cursor SET event_id = event_id WHERE name = ?", (_CURSOR,)) == 0:
        top = tx.fetchone("SELECT COALESCE(MAX(id), 0) AS m FROM events")
        start = int(top["m"]) if top else 0
        tx.execute("INSERT INTO alert_cursor (name, event_id) VALUES (?, ?)", (_CURSOR, start))
        return 0, 0
    row = tx.fetchone("SELECT event_id FROM alert_cursor WHERE name = ?", (_CURSOR,))
    assert row is not None
    since = int(row["event_id"])
    rows = tx.fetchall("SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?", (since, batch))
    inserted = 0
    for r in rows:
        event = Event.from_json(json.loads(r["body"]))
        for route in routes:
            level = route.severity(event)
            if level is not None and _insert(tx, route, event, level, now):
                inserted += 1
        since = int(r["id"])
    tx.execute("UPDATE alert_cursor SET event_id = ? WHERE name = ?", (since, _CURSOR))
    return len(rows), inserted


def _insert(tx: SyncTx, route: Route, event: Event, level: str, now: float) -> bool:
    key = dedup_key(event)
    seen = tx.fetchone(
        "SELECT id FROM alert_outbox WHERE sink = ? AND dedup_key = ? AND created_at > ? LIMIT 1",
        (route.sink, key, now - route.dedup_window_s),
    )
    if seen is not None:
        return False
    status = "held" if level != "critical" and route.is_quiet(now) else "pending"
    tx.execute(
        "INSERT INTO alert_outbox (sink, dedup_key, kind, severity, subject, body, status, attempts, "
        "next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
        (
            route.sink,
            key,
            event.kind,
            level,
            event.subject,
            canonical(event.to_json(), "alert"),
            status,
            now,
            now,
        ),
    )
    return True


@dataclass(frozen=True)
class Alert:
    """One outbox row, leased for delivery."""

    id: int
    sink: str
    kind: str
    severity: str
    subject: str
    event: Event
    attempts: int


def claim(tx: SyncTx, routes: Sequence[Route], now: float, lease_s: float, limit: int = 20) -> list[Alert]:
    """Lease due rows to this deliverer, within each sink's rate per minute."""
    claimed: list[Alert] = []
    for route in routes:
        sent = tx.fetchone(
            "SELECT COUNT(*) AS n FROM alert_outbox WHERE sink = ? AND (sent_at > ? OR lease_until > ?)",
            (route.sink, now - 60.0, now),
        )
        room = min(limit, route.rate_per_minute - (int(sent["n"]) if sent else 0))
        if room <= 0:
            continue
        rows = tx.fetchall(
            "SELECT id, kind, severity, subject, body, attempts FROM alert_outbox WHERE sink = ? "
            "AND status = 'pending' AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            "ORDER BY id LIMIT ?",
            (route.sink, now, now, room),
        )
        for r in rows:
            n = tx.execute(
                "UPDATE alert_outbox SET lease_until = ? WHERE id = ? AND status = 'pending' "
                "AND (lease_until IS NULL OR lease_until <= ?)",
                (now + lease_s, r["id"], now),
            )
            if n == 1:
                event = Event.from_json(json.loads(r["body"]))
                claimed.append(
                    Alert(
                        int(r["id"]),
                        route.sink,
                        r["kind"],
                        r["severity"],
                        r["subject"],
                        event,
                        int(r["attempts"]),
                    )
                )
    return claimed


def delivered(tx: SyncTx, alert_id: int, now: float) -> None:
    tx.execute(
        "UPDATE alert_outbox SET status = 'sent', sent_at = ?, lease_until = NULL, attempts = attempts + 1 "
        "WHERE id = ?",
        (now, alert_id),
    )


def failed(tx: SyncTx, alert: Alert, error: str, now: float, max_attempts: int, backoff_s: float) -> None:
    """A failed attempt: again after an exponential backoff, or given up after ``max_attempts``."""
    attempts = alert.attempts + 1
    status = "failed" if attempts >= max_attempts else "pending"
    tx.execute(
        "UPDATE alert_outbox SET status = ?, attempts = ?, next_at = ?, lease_until = NULL, last_error = ? "
        "WHERE id = ?",
        (status, attempts, now + backoff_s * 2 ** (attempts - 1), error[:500], alert.id),
    )


def outbox_rows(tx: SyncTx, status: str | None = None) -> list[dict[str, Any]]:
    """Rows for listing (the digest, tests)."""
    sql = (
        "SELECT id, sink, dedup_key, kind, severity, subject, status, attempts, last_error, created_at "
        "FROM alert_outbox"
    )
    params: tuple[Any, ...] = ()
    if status is not None:
        sql, params = sql + " WHERE status = ?", (status,)
    return [dict(r) for r in tx.fetchall(sql + " ORDER BY id", params)]
