"""How the CLI draws things: the live tree, events, runs and budgets (rich)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from beamish._events import Event
from beamish.company._running import caps_text, from_budget_json
from beamish.company._status import TreeNode

_STYLE = {
    "running": "green",
    "restarting": "yellow",
    "paused": "bold magenta",
    "looping": "bold red",
    "over_budget": "bold magenta",
    "stopped": "dim",
    "store_unavailable": "bold yellow",
}


def _label(node: TreeNode) -> Text:
    text = Text()
    text.append(f"{node.state:<11}", style=_STYLE.get(node.state, ""))
    text.append(" ")
    text.append(node.id, style="bold" if node.type == "supervisor" else "")
    facts: list[str] = []
    if node.strategy:
        facts.append(node.strategy)
    if node.type == "agent" or node.restarts:
        facts.append(f"restarts {node.restarts}")
    if node.last_exit:
        facts.append(f"last exit {node.last_exit}")
    if node.spent_usd is not None:
        cap = f" / ${node.cap_usd:.2f}" if node.cap_usd is not None else ""
        facts.append(f"${node.spent_usd:.4f}{cap}")
    if node.queued or node.in_flight:
        facts.append(f"queued {node.queued or 0} · running {node.in_flight or 0}")
    if node.next_schedule:
        facts.append(f"next {node.next_schedule}")
    if node.version:
        facts.append(node.version)
    if node.running:
        facts.append(running_text(node.running))
    if node.drift:
        facts.append(node.drift)
    if facts:
        text.append("  " + " · ".join(facts), style="dim")
    if node.unprotected:
        text.append(f"  UNPROTECTED ({node.unprotected})", style="bold red")
    return text


def running_text(running: dict[str, Any]) -> str:
    """The running version's caps and prices, and what ``beamish.toml`` on disk would change."""
    text = caps_text(from_budget_json({**running.get("caps", {}), "prices": running.get("prices", {})}))
    if running.get("on_disk"):
        text += f" (beamish.toml on disk differs: {', '.join(running['on_disk'])})"
    return text


def tree_view(root: TreeNode) -> Tree:
    """The supervision tree: state, restarts, last exit reason, spend vs cap, next schedule."""
    top = Tree(_label(root))

    def add(parent: Tree, node: TreeNode) -> None:
        branch = parent.add(_label(node))
        for child in node.children:
            add(branch, child)

    for child in root.children:
        add(top, child)
    return top


def event_line(event: Event) -> Text:
    when = datetime.fromtimestamp(event.at).strftime("%H:%M:%S")
    text = Text(f"{when}  ", style="dim", no_wrap=True, overflow="ellipsis")
    style = "red" if event.kind in ("child.exited", "supervisor.escalated", "watchdog.hung") else ""
    text.append(f"{event.kind:<22}", style=style or "cyan")
    text.append(f" {event.subject}")
    if event.data:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in event.data.items())
        text.append(f"  {shown}", style="dim")
    return text


def _short(value: Any) -> str:
    if isinstance(value, dict) and "kind" in value:
        return str(value["kind"])
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def runs_table(runs: list[Any]) -> Table:
    table = Table("run", "agent", "status", "spend", "created", "why", box=None)
    for run in runs:
        created = datetime.fromtimestamp(run.created_at).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(run.run_id, run.agent, run.status, f"${run.spend_usd:.4f}", created, _why(run.reason))
    return table


def _why(reason: Any) -> str:
    """A run's exit reason in a few words (a failed run's error is the first thing one asks about)."""
    if reason is None or reason.kind == "normal":
        return ""
    message = getattr(reason, "message", None)
    if isinstance(message, str) and message:
        detail = message.splitlines()[0]
    else:
        fields = {k: v for k, v in reason.to_json().items() if k not in ("v", "kind")}
        detail = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
    text = f"{reason.kind}: {detail}" if detail else reason.kind
    return text if len(text) <= 100 else text[:99] + "…"
