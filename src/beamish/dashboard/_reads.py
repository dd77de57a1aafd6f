"""What the dashboard's pages read from the store: runs, events, spend, restarts, upgrades, schedules.

Every page reads the store directly (not the node), so the runs, a run's timeline, the events and the
pictures stay readable while the node is stopped. Queries are bounded: a page of runs or events, a
day or a month of the ledger.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from beamish._events import Event
from beamish.agent._budget import load_company_budget, window_bounds
from beamish.journal._records import RUN_STATUSES, Run
from beamish.journal._runs import _RUN_COLS, run_from_row
from beamish.schedule._history import ScheduleInfo, list_schedules

#: Statuses that wait for a person: listed first.
HELD = ("paused", "awaiting_approval", "needs_attention")
RUNS_PER_PAGE = 50
EVENTS_PER_PAGE = 100
#: The kinds a restart picture counts, and the upgrades section lists.
RESTART = "child.restarted"
UPGRADE_KINDS = ("agent.upgraded", "agent.rolled_back", "agent.flagged")


@dataclass(frozen=True)
class RunsPage:
    runs: list[Run]
    total: int
    page: int
    agents: list[str]
    #: When each run first started working (its first ``run.started`` event), by run id. A
    #: scheduled run is created at its tick's time on the scheduler's clock, which in the demo is
    #: simulated; the event carries the node's own time.
    started: dict[str, float] = field(default_factory=dict)


async def first_starts(store: Any, run_ids: list[str]) -> dict[str, float]:
    if not run_ids:
        return {}
    marks = ",".join("?" * len(run_ids))
    sql = (
        "SELECT subject, MIN(at) AS at FROM events WHERE kind = 'run.started' "
        f"AND subject IN ({marks}) GROUP BY subject"
    )
    rows = await store.read(lambda tx: tx.fetchall(sql, run_ids))
    return {str(r["subject"]): float(r["at"]) for r in rows}


async def runs_page(store: Any, *, agent: str | None, status: str | None, page: int) -> RunsPage:
    """One page of runs: held ones (paused, awaiting approval, needing attention) first, then newest
    first."""
    where: list[str] = []
    params: list[Any] = []
    if agent:
        where.append("agent = ?")
        params.append(agent)
    if status and status in RUN_STATUSES:
        where.append("status = ?")
        params.append(status)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    held = ", ".join(f"'{s}'" for s in HELD)
    sql = (
        f"SELECT {_RUN_COLS} FROM runs{clause} ORDER BY CASE WHEN status IN ({held}) THEN 0 ELSE 1 END, "
        "created_at DESC, run_id LIMIT ? OFFSET ?"
    )
    page = max(1, page)
    rows = await store.read(lambda tx: tx.fetchall(sql, [*params, RUNS_PER_PAGE, (page - 1) * RUNS_PER_PAGE]))
    count = await store.read(lambda tx: tx.fetchone(f"SELECT COUNT(*) AS n FROM runs{clause}", params))
    agents = await store.read(lambda tx: tx.fetchall("SELECT DISTINCT agent FROM runs ORDER BY agent"))
    runs = [run_from_row(r) for r in rows]
    return RunsPage(
        runs=runs,
        total=int(count["n"]) if count else 0,
        page=page,
        agents=[str(r["agent"]) for r in agents],
        started=await first_starts(store, [r.run_id for r in runs]),
    )


@dataclass(frozen=True)
class EventsPage:
    events: list[tuple[int, Event]]
    older: int | None  # the ``before`` of the next (older) page, None at the start of history
    kinds: list[str]


def _agent_clause(agent: str) -> tuple[str, list[Any]]:
    """Events about ``agent``: named as the subject, as the last part of a tree path, or in the data."""
    like = agent.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (
        "(subject = ? OR subject LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')",
        [agent, f"%/{like}", f'%"agent":"{like}"%', f'%"id":"{like}"%'],
    )


async def events_page(store: Any, *, kind: str | None, agent: str | None, before: int | None) -> EventsPage:
    """A page of events, newest first, filtered by kind and by the agent they are about."""
    where: list[str] = []
    params: list[Any] = []
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if agent:
        clause, args = _agent_clause(agent)
        where.append(clause)
        params.extend(args)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = "SELECT id, body FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = await store.read(lambda tx: tx.fetchall(sql, [*params, EVENTS_PER_PAGE + 1]))
    found = [(int(r["id"]), Event.from_json(json.loads(r["body"]))) for r in rows]
    older = found[EVENTS_PER_PAGE - 1][0] if len(found) > EVENTS_PER_PAGE else None
    kinds = await store.read(lambda tx: tx.fetchall("SELECT DISTINCT kind FROM events ORDER BY kind"))
    return EventsPage(found[:EVENTS_PER_PAGE], older, [str(r["kind"]) for r in kinds])


async def kind_events(
    store: Any, kinds: tuple[str, ...], *, since: float = 0.0, limit: int = 500
) -> list[Event]:
    """The latest ``limit`` events of ``kinds`` at or after ``since``, oldest first."""
    marks = ",".join("?" * len(kinds))
    sql = f"SELECT body FROM events WHERE kind IN ({marks}) AND at >= ? ORDER BY id DESC LIMIT ?"
    rows = await store.read(lambda tx: tx.fetchall(sql, [*kinds, since, limit]))
    return [Event.from_json(json.loads(r["body"])) for r in reversed(rows)]


@dataclass(frozen=True)
class Caps:
    """The company's caps (None: none set), the zone its days and months begin in, and the spend
    in each window now."""

    tz: str = "UTC"
    per_day_usd: float | None = None
    per_month_usd: float | None = None
    total_usd: float | None = None
    day: tuple[float, float] = (0.0, 0.0)
    month: tuple[float, float] = (0.0, 0.0)
    spent_day: float = 0.0
    spent_month: float = 0.0
    spent_total: float = 0.0


async def company_caps(store: Any, now: float | None = None) -> Caps:
    budget = await load_company_budget(store)
    tz = budget.tz if budget is not None else "UTC"
    at = time.time() if now is None else now
    day = window_bounds("per_day_usd", tz, at)
    month = window_bounds("per_month_usd", tz, at)
    assert day[0] is not None and day[1] is not None and month[0] is not None and month[1] is not None
    return Caps(
        tz=tz,
        per_day_usd=None if budget is None else budget.per_day_usd,
        per_month_usd=None if budget is None else budget.per_month_usd,
        total_usd=None if budget is None else budget.total_usd,
        day=(day[0], day[1]),
        month=(month[0], month[1]),
        spent_day=await store.spend(since=day[0]),
        spent_month=await store.spend(since=month[0]),
        spent_total=await store.spend(),
    )


@dataclass
class SpendSeries:
    """Cumulative spend since ``start``: ``(at, total)`` points per agent and for the company."""

    start: float
    per_agent: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    company: list[tuple[float, float]] = field(default_factory=list)


async def spend_series(store: Any, since: float, *, limit: int = 20_000) -> SpendSeries:
    rows = await store.read(
        lambda tx: tx.fetchall(
            "SELECT at, agent, amount_usd FROM ledger WHERE kind = 'spend' AND at >= ? "
            "ORDER BY at, id LIMIT ?",
            [since, limit],
        )
    )
    series = SpendSeries(since)
    totals: dict[str, float] = defaultdict(float)
    company = 0.0
    for r in rows:
        at, agent, amount = float(r["at"]), str(r["agent"]), float(r["amount_usd"])
        totals[agent] += amount
        company += amount
        series.per_agent.setdefault(agent, []).append((at, totals[agent]))
        series.company.append((at, company))
    return series


async def runs_by_outcome(store: Any, since: float) -> list[tuple[float, str]]:
    """``(created_at, status)`` of the runs created since ``since``."""
    rows = await store.read(
        lambda tx: tx.fetchall(
            "SELECT created_at, status FROM runs WHERE created_at >= ? ORDER BY created_at LIMIT 50000",
            [since],
        )
    )
    return [(float(r["created_at"]), str(r["status"])) for r in rows]


async def schedules(store: Any) -> list[ScheduleInfo]:
    found: list[ScheduleInfo] = await store.read(list_schedules)
    return found
