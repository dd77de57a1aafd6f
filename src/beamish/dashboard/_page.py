# ruff: noqa: E501, RUF001  (an embedded HTML/JS document, not Python)
"""The overview page: one self-contained HTML document (no external assets, works offline) that
draws the live tree, held agents, approvals, spend and events from the JSON API."""

from beamish.dashboard._html import CSS, STATUS_SCRIPT, clock_banner, header

_HEAD = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>beamish</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
"""
    + CSS
    + """
  main { display: grid; grid-template-columns: minmax(22rem, 1fr) minmax(22rem, 1fr); gap: 1.5rem; padding: 1rem 1.5rem 2rem; }
  @media (max-width: 60rem) { main { grid-template-columns: 1fr; } }
  ul.tree, ul.tree ul { list-style: none; padding-left: 1.1rem; margin: 0; }
  ul.tree { padding-left: 0; }
  .node { padding: .15rem 0; }
  .state { display: inline-block; min-width: 6.5rem; font-size: .8rem; padding: 0 .35rem; border-radius: 3px;
           margin-right: .4rem; text-align: center; }
  .running { background: #d9f2dd; } .restarting { background: #fff1c2; } .paused, .over_budget { background: #ffd9c2; }
  .looping { background: #f7c8e0; } .stopped { background: #e4e4e4; } .store_unavailable { background: #f8d0cb; }
  .meta { color: #666; font-size: .85rem; margin-left: .4rem; }
  .unprotected { color: #b00020; font-weight: 600; font-size: .85rem; margin-left: .4rem; }
  #events { max-height: 40rem; overflow: auto; background: #fff; border: 1px solid #e5e5e5; padding: .3rem .5rem; }
  .ev { padding: .25rem 0; border-bottom: 1px solid #f0f0f0; overflow-wrap: anywhere; }
  .ev .t { font-family: ui-monospace, monospace; font-size: 12px; color: #666; margin-right: .4rem; }
  .ev .k { font-weight: 600; margin-right: .4rem; }
  .ev .s { font-family: ui-monospace, monospace; font-size: 12px; margin-right: .4rem; }
  .ev .sum { color: #444; }
  .ev pre { margin: .2rem 0 0; }
  button { cursor: pointer; }
</style>
</head>
<body>
"""
)

PAGE_BODY = """<main>
  <section>
    <h2 style="margin-top:0">Supervision tree</h2>
    <ul class="tree" id="tree" data-testid="tree"></ul>
    <h2>Paused or looping agents</h2>
    <p id="held-none" data-testid="held-none" class="muted">no agent is paused or looping</p>
    <table id="paused" data-testid="paused"><tbody></tbody></table>
    <h2>Awaiting a person</h2>
    <p id="approvals-none" data-testid="approvals-none">nothing is waiting</p>
    <label id="decider" hidden>deciding as <input id="by" data-testid="by" size="12" placeholder="your name"></label>
    <table id="approvals" data-testid="approvals"><tbody></tbody></table>
    <h2>Spend per agent</h2>
    <table id="spend" data-testid="spend"><thead><tr><th>agent</th><th>spent today</th><th>cap per day</th></tr></thead>
    <tbody></tbody></table>
  </section>
  <section>
    <h2 style="margin-top:0">Live events <span class="meta" style="font-weight:normal">times in UTC</span> <a href="/events" style="font-weight:normal;font-size:.85rem">all events, filterable →</a></h2>
    <div id="events" data-testid="events"></div>
  </section>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const headers = token ? {"Authorization": "Bearer " + token} : {};
const HELD = new Set(["paused", "looping", "over_budget"]);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
}
// as the server-rendered pages write dollars: at most four decimals, at least two ($3.00, $0.0156)
function money(x) {
  if (x === null || x === undefined) return "–";
  const [whole, cents] = Number(x).toFixed(4).split(".");
  return "$" + whole + "." + cents.replace(/0+$/, "").padEnd(2, "0");
}
// the node answers the buttons that change it; while it is stopped they cannot work
function nodeDown() { return document.getElementById("status").classList.contains("down"); }

function usd(x) { return x >= 0.01 || x === 0 ? "$" + Number(x).toFixed(2) : "$" + x; }
function runningText(r) {
  // the caps and prices of the version that runs, and what beamish.toml on disk would change
  const caps = Object.entries(r.caps || {}).map(([k, v]) => k.replace(/_usd$/, "") + " " + usd(v)).join(", ") || "no caps";
  const prices = Object.entries(r.prices || {}).map(([m, p]) => m + " $" + p.input_per_mtok + "/$" + p.output_per_mtok + " per Mtok").join("; ");
  let text = prices ? caps + "; " + prices : caps;
  if (r.on_disk && r.on_disk.length) text += " (beamish.toml on disk differs: " + r.on_disk.join(", ") + ")";
  return text;
}

function renderNode(n) {
  const meta = [];
  if (n.strategy) meta.push(n.strategy);
  if (n.restarts) meta.push(n.restarts + (n.restarts === 1 ? " restart" : " restarts"));
  if (n.last_exit) meta.push("last exit: " + n.last_exit);
  if (n.spent_usd !== null && n.spent_usd !== undefined) meta.push(money(n.spent_usd) + (n.cap_usd ? " / " + money(n.cap_usd) : ""));
  if (n.queued || n.in_flight) meta.push("queued " + (n.queued || 0) + " · running " + (n.in_flight || 0));
  if (n.next_schedule) meta.push("next: " + n.next_schedule);
  if (n.version) meta.push(n.version);
  if (n.drift) meta.push(n.drift);
  if (n.running) meta.push(runningText(n.running));
  const li = el("li", {"class": "node", "data-testid": "node-" + n.id, "data-state": n.state},
    el("span", {"class": "state " + n.state}, n.state),
    n.type === "agent" ? el("a", {href: "/runs?agent=" + encodeURIComponent(n.id), title: "its runs"}, el("b", {}, n.id)) : el("b", {}, n.id), el("span", {"class": "meta"}, meta.join(" · ")));
  if (n.unprotected) li.append(el("span", {"class": "unprotected", "data-testid": "unprotected-" + n.id}, "unprotected: " + n.unprotected));
  if (n.children && n.children.length) {
    const ul = el("ul", {});
    for (const c of n.children) ul.append(renderNode(c));
    li.append(ul);
  }
  return li;
}

function walk(n, out) { out.push(n); for (const c of n.children || []) walk(c, out); return out; }

async function resume(agent) {
  const r = await fetch("/api/agents/" + encodeURIComponent(agent) + "/resume" + q, {method: "POST", headers});
  if (!r.ok) { const body = await r.json().catch(() => ({})); alert("resume failed: " + (body.error || r.status)); }
  await refresh();
}

async function refresh() {
  const r = await fetch("/api/tree" + q, {headers});
  if (!r.ok) { if (window.beamishStatus) window.beamishStatus(); return; }
  const root = await r.json();
  const tree = document.getElementById("tree");
  tree.replaceChildren(renderNode(root));
  const nodes = walk(root, []);
  const paused = document.querySelector("#paused tbody");
  paused.replaceChildren(...nodes.filter(n => HELD.has(n.state)).map(n =>
    el("tr", {"data-testid": "held-" + n.id}, el("td", {}, n.id), el("td", {}, n.state),
       el("td", {}, el("button", {"data-testid": "resume-" + n.id, "data-needs-node": "1", disabled: nodeDown(),
         title: nodeDown() ? "the node is not running: start it to resume" : "", onclick: () => resume(n.id)}, "resume")))));
  document.getElementById("held-none").hidden = paused.childElementCount > 0;
  const spend = document.querySelector("#spend tbody");
  spend.replaceChildren(...nodes.filter(n => n.spent_usd !== null && n.spent_usd !== undefined).map(n =>
    el("tr", {"data-testid": "spend-" + n.id}, el("td", {}, n.id), el("td", {}, money(n.spent_usd)), el("td", {}, money(n.cap_usd)))));
}

function gateCall(g) {
  return g.kind === "question" ? "asks: " + ((g.args || {}).question || "") : g.tool + "(" + JSON.stringify(g.args) + ")";
}
async function decide(g, decision, text) {
  const by = document.getElementById("by").value.trim();
  if (!by) { alert("say who decides: fill in 'deciding as'"); return; }
  localStorage.setItem("beamish-by", by);
  const body = {by};
  if (decision === "answer") body.answer = text; else if (text) body.note = text;
  const r = await fetch("/api/approvals/" + encodeURIComponent(g.gate_id) + "/" + decision + q,
    {method: "POST", headers: Object.assign({"Content-Type": "application/json"}, headers), body: JSON.stringify(body)});
  if (!r.ok) { const b = await r.json().catch(() => ({})); alert(decision + " failed: " + (b.error || r.status)); }
  await refreshApprovals();
}
function gateRow(g) {
  const note = el("input", {"data-testid": "note-" + g.gate_id, placeholder: g.kind === "question" ? "answer" : "note (optional)", size: 14});
  const cost = money(g.cost_usd || 0) + " so far";
  const who = g.approvers && g.approvers.length ? "· " + g.approvers.join(", ") + " may decide" : "";
  const buttons = g.kind === "question"
    ? [el("button", {"data-testid": "answer-" + g.gate_id, onclick: () => decide(g, "answer", note.value)}, "answer")]
    : [el("button", {"data-testid": "approve-" + g.gate_id, onclick: () => decide(g, "approve", note.value)}, "approve"),
       el("button", {"data-testid": "deny-" + g.gate_id, onclick: () => decide(g, "deny", note.value)}, "deny")];
  return el("tr", {"data-testid": "gate-" + g.gate_id},
    el("td", {}, el("b", {}, g.agent), el("div", {"class": "meta"}, gateCall(g)), el("div", {"class": "meta"}, cost + " " + who)),
    el("td", {}, note, ...buttons));
}
async function refreshApprovals() {
  const r = await fetch("/api/approvals" + q, {headers});
  if (!r.ok) return;
  const gates = (await r.json()).filter(g => g.status === "pending");
  document.querySelector("#approvals tbody").replaceChildren(...gates.map(gateRow));
  document.getElementById("approvals-none").hidden = gates.length > 0;
  document.getElementById("decider").hidden = gates.length === 0;
}
document.getElementById("by").value = localStorage.getItem("beamish-by") || "";

let pending = null;
function soon() { if (!pending) pending = setTimeout(() => { pending = null; refresh(); refreshApprovals(); }, 150); }

const box = document.getElementById("events");
const seen = new Map();  // key -> its line (null once the line is dropped)
// Newest first, in the order the stream says (not by time: the demo's schedule events carry its
// simulated clock). A stream, on each (re)connect, first replays recent events oldest first: an
// event not shown yet goes just above the last one this stream placed or had already shown, and
// one older than all of those goes to the bottom. The replay arrives as a burst on connecting;
// after it, each arrival goes on top.
let cursor = null, burstEnds = 0;
const source = new EventSource("/api/events" + q);
source.onopen = () => {
  cursor = null; burstEnds = performance.now() + 1000;
  if (window.beamishStatus) window.beamishStatus();
};
source.onerror = () => { if (window.beamishStatus) window.beamishStatus(); };
source.addEventListener("beamish", (m) => {
  const ev = JSON.parse(m.data);
  const key = ev.at + "|" + ev.kind + "|" + ev.subject;
  if (performance.now() > burstEnds) cursor = box.firstElementChild;
  if (seen.has(key)) {  // a reconnect replays the recent ones: shown already, it marks the place
    if (seen.get(key) && seen.get(key).isConnected) cursor = seen.get(key);
    return;
  }
  const t = new Date(ev.at * 1000).toISOString().slice(11, 19);
  const subject = ev.data && ev.data.run_id === ev.subject
    ? el("a", {"class": "s", href: "/runs/" + encodeURIComponent(ev.subject)}, ev.subject)
    : el("span", {"class": "s"}, ev.subject);
  const line = el("div", {"class": "ev", "data-testid": "event", "data-kind": ev.kind},
    el("span", {"class": "t"}, t), el("span", {"class": "k"}, ev.kind), subject,
    el("span", {"class": "sum"}, ev.summary || ""),
    el("details", {}, el("summary", {}, "JSON"), el("pre", {}, JSON.stringify(ev, null, 2))));
  box.insertBefore(line, cursor);  // null: at the bottom
  cursor = line;
  seen.set(key, line);
  while (box.childElementCount > 500) box.lastElementChild.remove();
  soon();
});
refresh();
refreshApprovals();
setInterval(refresh, 5000);
setInterval(refreshApprovals, 5000);
</script>
</body>
</html>
"""


def overview_page(clock_note: str | None = None) -> str:
    """The overview, with the navigation, the node banner and the simulated clock's note if any."""
    return (
        _HEAD
        + header("/")
        + clock_banner(clock_note)
        + PAGE_BODY.replace("</body>", STATUS_SCRIPT + "</body>")
    )


PAGE = overview_page()
