# ruff: noqa: E501, RUF001  (an embedded HTML/JS document, not Python)
"""The dashboard page: one self-contained HTML document (no external assets, works offline)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>beamish</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  main { display: grid; grid-template-columns: minmax(22rem, 1fr) minmax(22rem, 1fr); gap: 1.5rem; }
  ul.tree, ul.tree ul { list-style: none; padding-left: 1.1rem; margin: 0; }
  ul.tree { padding-left: 0; }
  .node { padding: .15rem 0; }
  .state { display: inline-block; min-width: 6.5rem; font-size: .8rem; padding: 0 .35rem; border-radius: 3px;
           margin-right: .4rem; text-align: center; }
  .running { background: #d9f2dd; } .restarting { background: #fff1c2; } .paused, .over_budget { background: #ffd9c2; }
  .looping { background: #f7c8e0; } .stopped { background: #e4e4e4; }
  .meta { color: #666; font-size: .85rem; margin-left: .4rem; }
  .unprotected { color: #b00020; font-weight: 600; font-size: .85rem; margin-left: .4rem; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #e5e5e5; }
  #events { max-height: 32rem; overflow: auto; font: 12px/1.4 ui-monospace, monospace; background: #fff;
            border: 1px solid #e5e5e5; padding: .4rem; }
  #events div { white-space: nowrap; }
  button { cursor: pointer; }
  #status { color: #666; font-size: .85rem; }
</style>
</head>
<body>
<h1>beamish <span id="status" data-testid="status">connecting…</span></h1>
<main>
  <section>
    <h2>Supervision tree</h2>
    <ul class="tree" id="tree" data-testid="tree"></ul>
    <h2>Paused or looping agents</h2>
    <table id="paused" data-testid="paused"><tbody></tbody></table>
    <h2>Awaiting a person</h2>
    <p id="approvals-none" data-testid="approvals-none">nothing is waiting</p>
    <label id="decider">deciding as <input id="by" data-testid="by" size="12" placeholder="your name"></label>
    <table id="approvals" data-testid="approvals"><tbody></tbody></table>
    <h2>Spend per agent</h2>
    <table id="spend" data-testid="spend"><thead><tr><th>agent</th><th>spent</th><th>cap</th></tr></thead>
    <tbody></tbody></table>
  </section>
  <section>
    <h2>Live events</h2>
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
function money(x) { return x === null || x === undefined ? "–" : "$" + Number(x).toFixed(4); }

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
    el("span", {"class": "state " + n.state}, n.state), el("b", {}, n.id), el("span", {"class": "meta"}, meta.join(" · ")));
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
  if (!r.ok) { document.getElementById("status").textContent = "error " + r.status; return; }
  const root = await r.json();
  const tree = document.getElementById("tree");
  tree.replaceChildren(renderNode(root));
  const nodes = walk(root, []);
  const paused = document.querySelector("#paused tbody");
  paused.replaceChildren(...nodes.filter(n => HELD.has(n.state)).map(n =>
    el("tr", {"data-testid": "held-" + n.id}, el("td", {}, n.id), el("td", {}, n.state),
       el("td", {}, el("button", {"data-testid": "resume-" + n.id, onclick: () => resume(n.id)}, "resume")))));
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
  const cost = "$" + Number(g.cost_usd || 0).toFixed(4) + " so far";
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
}
document.getElementById("by").value = localStorage.getItem("beamish-by") || "";

let pending = null;
function soon() { if (!pending) pending = setTimeout(() => { pending = null; refresh(); refreshApprovals(); }, 150); }

const box = document.getElementById("events");
const source = new EventSource("/api/events" + q);
source.onopen = () => { document.getElementById("status").textContent = "live"; };
source.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
source.addEventListener("beamish", (m) => {
  const ev = JSON.parse(m.data);
  const t = new Date(ev.at * 1000).toISOString().slice(11, 19);
  const line = el("div", {"data-testid": "event", "data-kind": ev.kind}, t + "  " + ev.kind + "  " + ev.subject +
    (ev.data && Object.keys(ev.data).length ? "  " + JSON.stringify(ev.data) : ""));
  box.prepend(line);
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
