# ruff: noqa: E501, RUF001  (markup)
"""The server-rendered pages: runs, one run's timeline, events, charts, the company's spend and caps,
upgrades and schedules. Each reads the store (so it works while the node is stopped) and has a
linkable URL whose query holds its filters."""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

from beamish._exceptions import RunNotFound
from beamish.dashboard import _reads as reads
from beamish.dashboard import _svg as svg
from beamish.dashboard._html import (
    bar,
    duration,
    event_json,
    event_summary,
    link,
    money,
    pill,
    reason_text,
    run_link,
    short,
    table,
    when,
)
from beamish.journal._records import RUN_STATUSES
from beamish.journal._timeline import run_timeline

NO_STORE = (
    '<p class="muted" data-testid="no-store">This dashboard has no store to read runs and events from.</p>'
)
_RUNNING = ("running", "queued")


def _options(values: list[str], chosen: str | None, everything: str) -> str:
    out = [f'<option value="">{escape(everything)}</option>']
    for value in values:
        selected = " selected" if value == chosen else ""
        out.append(f'<option value="{escape(value)}"{selected}>{escape(value.replace("_", " "))}</option>')
    return "".join(out)


async def runs_body(store: Any, *, agent: str | None, status: str | None, page: int) -> str:
    found = await reads.runs_page(store, agent=agent, status=status, page=page)
    pages = max(1, math.ceil(found.total / reads.RUNS_PER_PAGE))
    now = time.time()
    rows = []
    for run in found.runs:
        begun = found.started.get(run.run_id, run.created_at)
        end = now if run.status in _RUNNING else run.updated_at
        took = duration(end - begun) if run.status != "queued" else "–"
        started = (
            when(begun)
            if run.status != "queued"
            else f'<span class="muted">queued {when(run.created_at)}</span>'
        )
        rows.append(
            f'<tr data-testid="run-row" data-status="{escape(run.status)}">'
            f'<td class="mono"><a href="{run_link(run.run_id)}" class="runid" title="{escape(run.run_id)}">{escape(run.run_id)}</a></td>'
            f'<td class=nowrap><a href="{link("/runs", agent=run.agent)}">{escape(run.agent)}</a></td>'
            f"<td>{pill(run.status)}</td><td class=num>{started}</td>"
            f"<td class=num>{took}</td><td class=num>{money(run.spend_usd)}</td>"
            f"<td>{escape(_why(run))}</td></tr>"
        )
    listing = table(
        '<table data-testid="runs"><thead><tr><th>run</th><th>agent</th><th>status</th><th class=num>started (UTC)</th>'
        "<th class=num>duration</th><th class=num>cost</th><th>exit reason</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    if not rows:
        listing = (
            '<p class="muted" data-testid="runs-none">No run matches these filters.</p>'
            if agent or status
            else '<p class="muted" data-testid="runs-none">No runs yet: a run appears here once an agent '
            "is given a task (<code>beamish submit AGENT TASK</code>) or a schedule fires.</p>"
        )
    pager = []
    if found.page > 1:
        pager.append(
            f'<a href="{link("/runs", agent=agent, status=status, page=found.page - 1)}" data-testid="newer">← newer</a>'
        )
    pager.append(f"<span>page {found.page} of {pages} · {found.total} runs</span>")
    if found.page < pages:
        pager.append(
            f'<a href="{link("/runs", agent=agent, status=status, page=found.page + 1)}" data-testid="older">older →</a>'
        )
    filters = (
        '<form class="filters" method="get" action="/runs" data-testid="run-filters">'
        f'<label>agent<select name="agent" data-testid="filter-agent">{_options(found.agents, agent, "every agent")}</select></label>'
        f'<label>status<select name="status" data-testid="filter-status">{_options(sorted(RUN_STATUSES), status, "every status")}</select></label>'
        '<button type="submit">filter</button></form>'
    )
    return (
        "<h1>Runs</h1>"
        '<p class="muted">Runs that wait for a person (paused, awaiting approval, needing attention) '
        "come first, then the newest.</p>"
        f"{filters}{listing}<div class=pager>{''.join(pager)}</div>"
    )


def _why(run: Any) -> str:
    """The list's "exit reason" column: why a run ended, or what it waits for."""
    if run.status == "awaiting_approval":
        return "waits for a person to approve a call (Overview, or beamish approvals)"
    return reason_text(run.reason)


def _next_step(run: Any) -> str:
    """What a person can do about a run that waits for one."""
    agent = escape(run.agent)
    if run.status == "awaiting_approval":
        text = (
            'It waits for a person: approve or deny its call under "Awaiting a person" on the '
            '<a href="/">Overview</a>, or with <code>beamish approvals</code>.'
        )
    elif run.status == "paused":
        text = (
            f"Paused: it continues where it stopped once <b>{agent}</b> is resumed "
            f'<button data-resume="{agent}" data-needs-node="1" data-testid="resume-run">resume {agent}</button> '
            f"(or <code>beamish resume {agent}</code>)."
        )
    elif run.status == "needs_attention":
        text = (
            "It needs attention: read the reason below, then retry it with "
            f"<code>beamish retry {escape(run.run_id)}</code> or cancel it."
        )
    else:
        return ""
    return f'<p class="hint" data-testid="run-next">{text}</p>'


def _value(short_value: Any, full_value: Any, head: str = "", tail: str = "") -> str:
    """A value as ``beamish show`` shortens it (between ``head`` and ``tail``, markup), with the
    whole of it on demand when that differs."""
    if short_value is None:
        return head + tail
    shown = short_value if isinstance(short_value, str) else short(short_value, 10_000)
    body = f'<div>{head}<span class="mono">{escape(shown)}</span>{tail}</div>'
    full = full_value if isinstance(full_value, str) else short(full_value, 1_000_000)
    if full != shown:
        body += f"<details><summary>all of it</summary><pre>{escape(full)}</pre></details>"
    return body


def _step_row(step: dict[str, Any], full: dict[str, Any]) -> str:
    marks = "".join(
        f'<span class="mark" data-testid="mark-{escape(m)}">{escape(m)}</span>' for m in step["marks"]
    )
    if step["kind"] == "llm":
        tokens = step["tokens"]
        what = f"<b>{escape(str(step['model']))}</b>"
        detail = f"tokens in {tokens['in']} · out {tokens['out']}"
        if tokens["cache_read"] or tokens["cache_write"]:
            detail += f" · cache {tokens['cache_read']}r/{tokens['cache_write']}w"
        result = full["result"]
        if isinstance(result, dict) and result.get("tool_calls"):
            calls = ", ".join(
                f"{c.get('name')}({short(c.get('arguments'), 10_000)})" for c in result["tool_calls"]
            )
            outcome = _value(short(f"calls {calls}", 160), f"calls {calls}")
            if result.get("text"):
                outcome = _value(short(result["text"], 160), result["text"]) + outcome
        else:
            outcome = _value(step["result"], full["result"])
    else:
        what = _value(step["arguments"], full["arguments"], f"<b>{escape(step['name'])}</b>(", ")")
        detail = ""
        if step["kind"] == "compact" and step.get("model"):  # a fold paid as a model call
            detail = f"{escape(str(step['model']))} · tokens in {step['tokens']['in']} · out {step['tokens']['out']}"
        if step.get("effect"):
            detail = f'<span class="pill">{escape(step["effect"])}</span> key <span class="mono">{escape(str(step["idempotency_key"]))}</span>'
        outcome = _value(step["result"], full["result"])
    if step["error"]:
        outcome += f'<pre class="error" data-testid="step-error">{escape(full["error"] or "")}</pre>'
    phase = "" if step["phase"] == "done" else f' <span class="pill">{escape(step["phase"])}</span>'
    latency = "" if step["latency_s"] is None else duration(step["latency_s"])
    return (
        f'<tr data-testid="step" data-kind="{escape(step["kind"])}"><td class=num>#{step["seq"]}</td>'
        f"<td class=nowrap>{escape(step['kind'])}{phase}{marks}</td><td>{what}<div class=muted>{detail}</div></td>"
        f"<td>{outcome}</td><td class=num>{money(step['cost_usd'], 6)}</td><td class=num>{latency}</td></tr>"
    )


async def run_body(store: Any, run_id: str) -> str | None:
    """The run's timeline, as ``beamish show`` prints it; None when there is no such run."""
    try:
        timeline = await run_timeline(store, run_id)
    except RunNotFound:
        return None
    data, full = timeline.to_json(), timeline.to_json(full=True)
    run = timeline.run
    begun = (await reads.first_starts(store, [run.run_id])).get(run.run_id, run.created_at)
    end = time.time() if run.status in _RUNNING else run.updated_at
    facts = [
        ("agent", f'<a href="{link("/runs", agent=run.agent)}">{escape(run.agent)}</a>'),
        ("status", pill(run.status)),
        ("created", when(run.created_at) + " UTC"),
        ("started", when(begun) + " UTC"),
        ("duration", duration(end - begun)),
        ("cost", money(run.spend_usd, 6)),
    ]
    if data["version"] is not None:
        facts.append(("version", f"v{escape(str(data['version']))}"))
    facts.append(
        (
            "task",
            _value(data["task"] if isinstance(data["task"], str) else short(data["task"], 160), full["task"]),
        )
    )
    kv = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    steps = "".join(_step_row(s, f) for s, f in zip(data["steps"], full["steps"], strict=True))
    timeline_html = table(
        '<table data-testid="timeline"><thead><tr><th class=num>step</th><th>kind</th><th style="width:42%">call</th>'
        '<th style="width:34%">result</th><th class=num>cost</th><th class=num>took</th></tr></thead>'
        f"<tbody>{steps}</tbody></table>"
    )
    if not steps:
        timeline_html = '<p class="muted">No steps recorded.</p>'
    end_parts = []
    if timeline.error is not None:
        end_parts.append(f'<h2>Reason</h2><pre data-testid="run-error">{escape(timeline.error)}</pre>')
    elif run.reason is not None:
        end_parts.append(f'<h2>Reason</h2><p data-testid="run-reason">{escape(run.reason.kind)}</p>')
    if run.output is not None:
        output = full["output"] if isinstance(full["output"], str) else short(full["output"], 1_000_000)
        end_parts.append(f'<h2>Output</h2><pre data-testid="run-output">{escape(output)}</pre>')
    count = len(timeline.steps)
    total = (
        f'<p class="muted">total {money(run.spend_usd, 6)} over {count} step{"" if count == 1 else "s"}</p>'
    )
    events = f'<p><a href="{link("/events", agent=run_id)}">events about this run</a></p>'
    return (
        f'<h1 data-testid="run-id">Run <span class="mono" style="font-size:1rem">{escape(run.run_id)}</span></h1><dl class="kv" data-testid="run-facts">{kv}</dl>'
        f"{_next_step(run)}<h2>Timeline</h2>{timeline_html}{''.join(end_parts)}{total}{events}"
    )


async def events_body(store: Any, *, kind: str | None, agent: str | None, before: int | None) -> str:
    found = await reads.events_page(store, kind=kind, agent=agent, before=before)
    rows = []
    for _eid, event in found.events:
        rows.append(
            f'<tr data-testid="event-row" data-kind="{escape(event.kind)}"><td class="num mono">{when(event.at)}</td>'
            f'<td class=nowrap><a href="{link("/events", kind=event.kind, agent=agent)}">{escape(event.kind)}</a></td>'
            f"<td class=mono>{_subject_link(event)}</td>"
            f"<td>{escape(event_summary(event))}<details><summary>JSON</summary>"
            f'<pre data-testid="event-json">{escape(event_json(event))}</pre></details></td></tr>'
        )
    listing = (
        table(
            '<table class="stack" data-testid="events"><thead><tr><th class=num>time (UTC)</th><th>kind</th><th>subject</th>'
            f"<th>summary</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        if rows
        else '<p class="muted" data-testid="events-none">No event matches.</p>'
    )
    pager = []
    if before is not None:
        pager.append(f'<a href="{link("/events", kind=kind, agent=agent)}">← newest</a>')
    if found.older is not None:
        pager.append(
            f'<a href="{link("/events", kind=kind, agent=agent, before=found.older)}" data-testid="older">older →</a>'
        )
    filters = (
        '<form class="filters" method="get" action="/events" data-testid="event-filters">'
        f'<label>kind<select name="kind" data-testid="filter-kind">{_options(found.kinds, kind, "every kind")}</select></label>'
        f'<label>agent or run<input name="agent" value="{escape(agent or "")}" data-testid="filter-agent" size="18"></label>'
        '<button type="submit">filter</button></form>'
    )
    return f"<h1>Events</h1><p class=muted>Newest first; times in UTC.</p>{filters}{listing}<div class=pager>{''.join(pager)}</div>"


def _subject_link(event: Any) -> str:
    """A run's events link to the run's page."""
    if event.data.get("run_id") == event.subject:
        return f'<a href="{run_link(event.subject)}">{escape(event.subject)}</a>'
    return escape(event.subject)


async def charts_body(store: Any) -> str:
    caps = await reads.company_caps(store)
    day = await reads.spend_series(store, caps.day[0])
    month = await reads.spend_series(store, caps.month[0])
    since = time.time() - 86400
    figures = []
    day_caps = {} if caps.per_day_usd is None else {"day cap": caps.per_day_usd}
    month_caps = {} if caps.per_month_usd is None else {"month cap": caps.per_month_usd}
    figures.append(
        (
            f"Company spend today ({caps.tz} day) against its day cap",
            svg.spend_lines(
                "company spend today",
                {"company": day.company},
                day_caps,
                start=caps.day[0],
                end=caps.day[1],
                testid="chart-day",
            ),
        )
    )
    figures.append(
        (
            "Company spend this month against its month cap",
            svg.spend_lines(
                "company spend this month",
                {"company": month.company},
                month_caps,
                start=caps.month[0],
                end=caps.month[1],
                testid="chart-month",
            ),
        )
    )
    figures.append(
        (
            "Spend today per agent",
            svg.spend_lines(
                "spend today per agent",
                day.per_agent,
                {},
                start=caps.day[0],
                end=caps.day[1],
                testid="chart-agents",
            ),
        )
    )
    runs = await reads.runs_by_outcome(store, since)
    picture, size = svg.stacked_bars(
        "runs by outcome",
        [(at, s) for at, s in runs],
        testid="chart-runs",
        colours=svg.OUTCOME_COLOURS,
        nothing="no run in the last 24 hours",
    )
    figures.append((f"Runs created per {svg.bucket_name(size)}, by outcome (last 24 h)", picture))
    restarts = await reads.kind_events(store, (reads.RESTART,), since=since, limit=5000)
    items = [(e.at, str(e.data.get("id") or e.subject.rsplit("/", 1)[-1])) for e in restarts]
    picture, size = svg.stacked_bars(
        "restarts", items, testid="chart-restarts", nothing="no restart in the last 24 hours"
    )
    figures.append((f"Restarts per {svg.bucket_name(size)} by child (last 24 h)", picture))
    shown = "".join(
        f"<figure><figcaption>{escape(title)}</figcaption>{picture}</figure>" for title, picture in figures
    )
    note = (
        '<p class="muted">Times in UTC. A time axis spans the data it shows, so a minute of activity is as '
        "readable as a day; dashed lines are caps.</p>"
    )
    return f'<h1>Charts</h1>{note}<div class="charts" data-testid="charts">{shown}</div>'


async def company_body(
    store: Any, agents: list[tuple[str, float | None, float | None]], clock_note: str | None
) -> str:
    caps = await reads.company_caps(store)
    windows = [
        ("today", caps.spent_day, caps.per_day_usd),
        ("this month", caps.spent_month, caps.per_month_usd),
        ("in total", caps.spent_total, caps.total_usd),
    ]
    rows = "".join(
        f'<tr data-testid="cap-{name.replace(" ", "-")}"><td>{name}</td><td class=num>{money(spent)}</td>'
        f"<td class=num>{money(cap, 2)}</td><td>{bar(spent, cap)}</td></tr>"
        for name, spent, cap in windows
    )
    spend = (
        f"<h2>Company spend against its caps</h2><p class=muted>Days and months begin at midnight {escape(caps.tz)}.</p>"
        + table(
            '<table data-testid="company-caps"><thead><tr><th>window</th><th class=num>spent</th><th class=num>cap</th>'
            f"<th>share of the cap</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    )
    agent_rows = "".join(
        f'<tr data-testid="agent-spend-{escape(name)}"><td><a href="{link("/runs", agent=name)}">{escape(name)}</a></td>'
        f"<td class=num>{money(spent)}</td><td class=num>{money(cap, 2)}</td><td>{bar(spent or 0.0, cap)}</td></tr>"
        for name, spent, cap in agents
    )
    if agent_rows:
        spend += "<h2>Each agent today against its day cap</h2>" + table(
            '<table data-testid="agent-caps"><thead><tr><th>agent</th><th class=num>spent today</th><th class=num>cap/day</th>'
            f"<th>share of the cap</th></tr></thead><tbody>{agent_rows}</tbody></table>"
        )
    upgrades = await reads.kind_events(store, reads.UPGRADE_KINDS, limit=100)
    up_rows = "".join(
        f'<tr data-testid="upgrade" data-kind="{escape(e.kind)}"><td class="num mono">{when(e.at)}</td>'
        f"<td>{escape(e.kind.removeprefix('agent.').replace('_', ' '))}</td><td>{escape(str(e.data.get('agent') or e.subject))}</td>"
        f"<td>{escape(_version_change(e.kind, e.data))}</td><td>{escape(str(e.data.get('author') or ''))}</td>"
        f"<td>{escape(short(e.data.get('reason') or e.data.get('why') or '', 200))}</td></tr>"
        for e in reversed(upgrades)
    )
    upgrades_html = "<h2>Upgrades and rollbacks</h2>" + (
        table(
            '<table data-testid="upgrades"><thead><tr><th class=num>time (UTC)</th><th>what</th><th>agent</th><th>version</th>'
            f"<th>by</th><th>why</th></tr></thead><tbody>{up_rows}</tbody></table>"
        )
        if up_rows
        else '<p class="muted" data-testid="upgrades-none">No upgrade or rollback yet.</p>'
    )
    infos = await reads.schedules(store)
    sched_rows = "".join(
        f'<tr data-testid="schedule-{escape(i.schedule_id)}"><td>{escape(i.schedule_id)}</td>'
        f'<td><a href="{link("/runs", agent=i.agent)}">{escape(i.agent)}</a></td>'
        f"<td class='mono nowrap'>{escape(str(i.spec.get('cron')))}</td><td>{escape(str(i.spec.get('tz')))}</td>"
        f"<td class=num>{when(i.next_due_at) + ' UTC' if i.enabled else 'disabled'}</td>"
        f"<td class=num>{i.rate.due - i.rate.missed}</td><td class=num>{i.rate.missed}</td>"
        f"<td class=num>{'–' if i.rate.rate is None else f'{i.rate.rate:.0%}'}</td></tr>"
        for i in infos
    )
    clock = f'<p class="muted" data-testid="schedule-clock">{escape(clock_note)}</p>' if clock_note else ""
    schedules_html = (
        "<h2>Schedules and their next fires</h2>"
        + clock
        + (
            table(
                '<table data-testid="schedules"><thead><tr><th>schedule</th><th>agent</th><th>cron</th><th>zone</th>'
                "<th class=num>next fire</th><th class=num>fired</th><th class=num>missed</th><th class=num>succeeded</th>"
                f"</tr></thead><tbody>{sched_rows}</tbody></table>"
            )
            if sched_rows
            else '<p class="muted" data-testid="schedules-none">No schedule stored (they are stored when the company first runs).</p>'
        )
    )
    return f"<h1>Company</h1>{spend}{upgrades_html}{schedules_html}"


def _version_change(kind: str, data: dict[str, Any]) -> str:
    if kind == "agent.rolled_back":
        return f"v{data.get('from')} → v{data.get('to')}"
    if kind == "agent.upgraded":
        previous = data.get("previous")
        return f"v{previous} → v{data.get('version')}" if previous is not None else f"v{data.get('version')}"
    return f"v{data.get('version')}"
