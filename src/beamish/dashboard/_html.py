# ruff: noqa: E501, RUF001  (CSS and markup)
"""The dashboard's server-rendered pages share this: one stylesheet, the navigation, the banner that
says where the page's facts come from (the live node, or the store while the node is stopped), and
the formatting of times, money and exit reasons. Every value goes through :func:`html.escape`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from beamish._events import Event
from beamish._redact import redact

CSS = """
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
  header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .3rem 1.2rem; padding: .7rem 1.5rem;
           background: #1d1d1f; color: #fafafa; }
  header b { font-size: 1.1rem; }
  header nav a { color: #cfd8e3; text-decoration: none; margin-right: .9rem; }
  header nav a.here { color: #fff; font-weight: 600; border-bottom: 2px solid #7fb0ea; }
  #status { color: #9fe0ad; font-size: .85rem; }
  #status.down { color: #ffb4a8; }
  .banner { margin: 0; padding: .55rem 1.5rem; background: #fde3dd; color: #6e1c0f; border-bottom: 1px solid #f1b5a8; }
  .banner.clock { background: #eef3fb; color: #23406b; border-color: #c7d6ee; }
  .wrap { padding: 1rem 1.5rem 2rem; max-width: 90rem; }
  h1 { font-size: 1.25rem; margin: .2rem 0 .8rem; overflow-wrap: anywhere; }
  h2 { font-size: 1rem; margin: 1.3rem 0 .45rem; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  td, th { text-align: left; padding: .3rem .55rem; border-bottom: 1px solid #e7e7e7; vertical-align: top;
           overflow-wrap: anywhere; }
  th { font-weight: 600; background: #f3f3f3; white-space: nowrap; }
  td.num, th.num { text-align: right; white-space: nowrap; }
  td.nowrap { white-space: nowrap; overflow-wrap: normal; }
  a { color: #1f5fa8; }
  .mono, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
  pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: .2rem 0; background: #f6f6f6; padding: .4rem .5rem; border-radius: 3px; }
  .muted { color: #666; }
  .pill { display: inline-block; font-size: .78rem; padding: 0 .4rem; border-radius: 3px; background: #e4e4e4; white-space: nowrap; }
  .pill.succeeded { background: #d9f2dd; } .pill.failed, .pill.needs_attention { background: #f8d0cb; }
  .pill.paused, .pill.awaiting_approval { background: #ffe2c7; } .pill.running { background: #d8e6f8; } .pill.queued { background: #ececec; }
  .mark { display: inline-block; white-space: nowrap; font-size: .75rem; padding: 0 .35rem; margin-left: .3rem; border-radius: 3px; background: #fff1c2; color: #6b5200; }
  form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: 0 0 .8rem; }
  form.filters label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
  .pager { margin: .7rem 0; display: flex; gap: 1rem; align-items: center; }
  details summary { cursor: pointer; color: #1f5fa8; font-size: .82rem; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(30rem, 100%), 1fr)); gap: 1rem 1.5rem; }
  figure { margin: 0; background: #fff; border: 1px solid #e5e5e5; padding: .5rem .6rem; }
  figcaption { font-weight: 600; margin-bottom: .3rem; }
  svg.chart { width: 100%; height: auto; display: block; }
  svg .tick { font-size: 10px; fill: #555; } svg .legend { font-size: 11px; fill: #1d1d1f; } svg .empty { font-size: 13px; fill: #777; }
  .bar { height: .75rem; background: #eee; border-radius: 3px; overflow: hidden; min-width: 8rem; }
  .bar span { display: block; height: 100%; background: #3c9a5f; }
  .bar.over span { background: #b8423c; } .bar.near span { background: #d9822b; }
  .kv { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0 0 1rem; }
  .kv dt { color: #555; } .kv dd { margin: 0; overflow-wrap: anywhere; }
  .hint { margin: 0 0 1rem; padding: .45rem .7rem; background: #fff6e5; border-left: 3px solid #d9822b; }
  /* a table wider than a phone scrolls inside its box, instead of squeezing its columns to a letter
     or pushing the page off the screen */
  .scroll { overflow-x: auto; }
  @media (max-width: 40rem) {
    header, .banner, .wrap { padding-left: .75rem; padding-right: .75rem; }
    .scroll > table { min-width: 36rem; }
    /* a chart shrinks to a phone's width whole (pinch to zoom); its text grows to stay legible */
    svg .tick, svg .legend { font-size: 12px; } svg .empty { font-size: 20px; }
    /* a list of events reads as lines on a phone: time, kind, subject, then the summary below */
    .scroll > table.stack { min-width: 0; }
    table.stack, table.stack tbody { display: block; } table.stack thead { display: none; }
    table.stack tr { display: block; border-bottom: 1px solid #e7e7e7; padding: .3rem .4rem; }
    table.stack td { display: inline; border: 0; padding: 0 .5rem 0 0; }
    table.stack td:last-child { display: block; padding: .15rem 0 0; }
    .runid { display: inline-block; max-width: 11rem; overflow: hidden; text-overflow: ellipsis;
             white-space: nowrap; vertical-align: bottom; }
  }
"""

STATUS_SCRIPT = """
<script>
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const q = token ? "?token=" + encodeURIComponent(token) : "";
  let asked = 0, shown = 0;
  async function check() {
    const mine = ++asked;
    let text = "live", down = false, detail = "", gone = false;
    try {
      const r = await fetch("/api/status" + q);
      const s = await r.json();
      if (!s.live) { text = "node stopped: read-only"; down = true; detail = s.detail || ""; }
    } catch (e) { text = "dashboard unreachable"; down = true; gone = true; }
    if (mine < shown) return;  // a slower, older answer must not undo a newer one
    shown = mine;
    const el = document.getElementById("status");
    el.textContent = text; el.className = down ? "down" : "";
    for (const b of document.querySelectorAll("button[data-needs-node]")) {
      b.disabled = down;
      b.title = down ? "the node is not running: start it to resume" : "";
    }
    const banner = document.getElementById("node-banner");
    banner.hidden = !down;
    if (gone) banner.textContent = "The dashboard does not answer (its process stopped, or the " +
      "network is down): what this page shows is as of then, and it reconnects by itself when the dashboard is back.";
    else if (down) banner.textContent = "The node is not running" + (detail ? " (" + detail + ")" : "") +
      ": this page shows what the store holds, read-only, and reconnects by itself when the node is back.";
  }
  window.beamishStatus = check;
  // a resume button on a server-rendered page (a paused run's): the node resumes the agent
  for (const button of document.querySelectorAll("button[data-resume]")) {
    button.onclick = async () => {
      const headers = token ? {"Authorization": "Bearer " + token} : {};
      const agent = encodeURIComponent(button.dataset.resume);
      const r = await fetch("/api/agents/" + agent + "/resume" + q, {method: "POST", headers});
      if (!r.ok) { const b = await r.json().catch(() => ({})); alert("resume failed: " + (b.error || r.status)); }
      else location.reload();
    };
  }
  check();
  setInterval(check, 5000);
})();
</script>
"""

PAGES = (
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/events", "Events"),
    ("/charts", "Charts"),
    ("/company", "Company"),
)


def header(active: str) -> str:
    links = "".join(
        f'<a href="{href}"{" class=here" if href == active else ""} data-testid="nav-{escape(name.lower())}">{name}</a>'
        for href, name in PAGES
    )
    return (
        f'<header><b>beamish</b><nav>{links}</nav><span id="status" data-testid="status">…</span></header>'
        '<p class="banner" id="node-banner" data-testid="node-banner" hidden></p>'
    )


def clock_banner(note: str | None) -> str:
    if not note:
        return ""
    return f'<p class="banner clock" data-testid="clock-note">{escape(note)}</p>'


def layout(
    title: str, active: str, body: str, *, live: bool, detail: str | None, clock_note: str | None
) -> str:
    """A whole page. The banner starts right (from the status read while rendering) and is then kept
    right by a small inline script that asks ``/api/status`` every few seconds."""
    page = header(active)
    if not live:
        shown = f" ({detail})" if detail else ""
        page = page.replace(
            'data-testid="node-banner" hidden></p>',
            f'data-testid="node-banner">The node is not running{escape(shown)}: this page shows what the '
            "store holds, read-only, and reconnects by itself when the node is back.</p>",
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · beamish</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body>{page}{clock_banner(clock_note)}"
        f'<div class="wrap">{body}</div>{STATUS_SCRIPT}</body></html>'
    )


def plain_page(title: str, body: str) -> str:
    """A page outside the dashboard's navigation (a signed decision link, opened from a
    notification, often on a phone): the same look, no script, no links that need the token."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · beamish</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<style>{CSS}</style></head><body><header><b>beamish</b></header><div class="wrap">{body}</div>'
        "</body></html>"
    )


def when(ts: float | None) -> str:
    if ts is None:
        return "–"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def money(value: float | None, digits: int = 4) -> str:
    """Dollars to at most ``digits`` decimals and at least two: ``$3.00``, ``$0.0156``, ``$0.192``
    (not ``$0.192000``), ``$0.00``."""
    if value is None:
        return "–"
    text = f"{value:.{max(digits, 2)}f}"
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


def table(markup: str) -> str:
    """A table in a box that scrolls sideways on a narrow screen (the page itself never does)."""
    return f'<div class="scroll">{markup}</div>'


def reason_text(reason: Any) -> str:
    """A run's exit reason in a line (a failed run's error is the first thing one asks about)."""
    if reason is None or reason.kind == "normal":
        return ""
    fields = {k: v for k, v in reason.to_json().items() if k not in ("v", "kind", "traceback")}
    message = next((str(fields[k]) for k in ("error", "message", "detail") if fields.get(k)), None)
    detail = (
        message.splitlines()[0]
        if message
        else ", ".join(
            f"{k}={short(round(v, 6) if isinstance(v, float) else v)}"
            for k, v in fields.items()
            if v not in (None, "")
        )
    )
    text = f"{reason.kind}: {detail}" if detail else str(reason.kind)
    return str(redact(text if len(text) <= 140 else text[:139] + "…"))


def short(value: Any, limit: int = 80) -> str:
    if isinstance(value, dict) and "kind" in value:
        return str(value["kind"])
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The data keys a summary starts with, when present: what a person asks first.
_FIRST = ("agent", "status", "reason", "why", "limit", "version", "from", "to", "id", "restarts")


def event_summary(event: Event) -> str:
    """One line a person reads: the facts of the event's data, most telling first."""
    data = redact(event.data)
    if not isinstance(data, dict):
        return short(data, 160)
    parts = []
    for key in _FIRST:
        value = data.get(key)
        named = key in ("id", "agent") and event.subject.rsplit("/", 1)[-1] == value  # said by the subject
        if value not in (None, "", [], {}) and not named:
            parts.append(f"{key}: {short(value)}")
    for key, value in data.items():
        if key in _FIRST or key == "v" or value in (None, "", [], {}):
            continue
        if key == "run_id" and value == event.subject:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key.endswith("_at") and number:
            parts.append(f"{key.removesuffix('_at')}: {when(value)}")
            continue
        if key.endswith("_s") and number:  # late_s, delay_s: a duration, not 0.11519092166825762
            parts.append(f"{key.removesuffix('_s')}: {duration(value)}")
            continue
        if key.endswith("_usd") and number:
            parts.append(f"{key.removesuffix('_usd')}: {money(value, 6)}")
            continue
        if isinstance(value, float):
            value = round(value, 6)
        parts.append(f"{key}: {short(value, 60)}")
    text = " · ".join(parts)
    return text if len(text) <= 240 else text[:239] + "…"


def event_json(event: Event) -> str:
    return json.dumps(redact(event.to_json()), indent=2, sort_keys=True, default=str, ensure_ascii=False)


def link(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query, escaped for an attribute."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return escape(path + ("?" + urlencode(kept) if kept else ""))


def run_link(run_id: str) -> str:
    """The run's page, whatever its id holds (``/``, ``?``, ``#``, ``%``)."""
    return escape("/runs/" + quote(run_id, safe=":@-._~"))


def pill(status: str) -> str:
    return f'<span class="pill {escape(status)}">{escape(status.replace("_", " "))}</span>'


def bar(value: float, cap: float | None) -> str:
    if not cap:
        return '<span class="muted">no cap</span>'
    share = value / cap
    kind = " over" if share >= 1 else " near" if share >= 0.8 else ""
    return f'<div class="bar{kind}" title="{share:.0%} of the cap"><span style="width:{min(share, 1) * 100:.1f}%"></span></div>'
