"""The company as ``status`` and the dashboard show it, from the config and the journal.

The shape (groups, strategies, agents, caps, next fire) comes from the config; the facts (restarts,
last exit reason, paused, spend) come from events and the ledger in the store. A running node
overlays what only it knows (running or not this instant) on the same shape.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from beamish._events import Event
from beamish.company._config import CompanyConfig, load_config, schedule_entries
from beamish.company._running import running_budgets
from beamish.company._status import State, TreeNode, UnknownAgent


def skeleton(config: CompanyConfig, *, services: tuple[str, ...] = ()) -> TreeNode:
    """The tree the config describes: root → services, groups (with their agents), loose agents."""
    tree = config.file.tree
    root = TreeNode("root", "supervisor", strategy=tree.strategy)
    for name in services:
        if name != "scheduler":
            root.children.append(TreeNode(name, "service"))
    placed: set[str] = set()
    for group, section in tree.groups.items():
        node = TreeNode(group, "supervisor", strategy=section.strategy)
        for agent in section.agents:
            node.children.append(_agent_node(config, agent))
            placed.add(agent)
        root.children.append(node)
    for agent in config.agents:
        if agent not in placed:
            root.children.append(_agent_node(config, agent))
    if "scheduler" in services:
        root.children.append(TreeNode("scheduler", "service"))
    return root


def _agent_node(config: CompanyConfig, agent: str) -> TreeNode:
    section = config.agents[agent].section
    cap = section.budget.per_day_usd
    return TreeNode(agent, "agent", state="stopped", cap_usd=cap, next_schedule=next_fire(config, agent))


def next_fire_at(config: CompanyConfig, agent: str, now: float | None = None) -> datetime | None:
    """When the scheduler next fires one of the agent's schedules (its own answer: daylight saving
    and jitter included), in that schedule's zone; None without schedules."""
    after = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    dues = [
        schedule.next_due(sid, after).astimezone(schedule.zone)
        for sid, schedule, _, _ in schedule_entries(config, agent)
    ]
    return min(dues, key=datetime.timestamp, default=None)  # a repeated hour's times compare by instant


def next_fire(config: CompanyConfig, agent: str, now: float | None = None) -> str | None:
    """The agent's next scheduled fire as ``YYYY-MM-DD HH:MM ZONE``, or None without schedules."""
    fire = next_fire_at(config, agent, now)
    return None if fire is None else f"{fire:%Y-%m-%d %H:%M} {fire.tzinfo}"


def _node_for(root: TreeNode, event: Event) -> TreeNode | None:
    """The tree node an event is about: its subject (a name, or a path such as ``root/finance/cfo``),
    else the agent a run event names in its data."""
    names = [
        event.subject.rsplit("/", 1)[-1],
        str(event.data.get("id", "")),
        str(event.data.get("agent", "")),
    ]
    nodes = {n.id: n for n in root.walk()}
    for name in names:
        if name in nodes:
            return nodes[name]
    return None


def _reason_kind(value: object) -> str | None:
    if isinstance(value, dict) and value.get("kind"):
        return str(value["kind"])
    return str(value) if isinstance(value, str) and value else None


def apply_event(root: TreeNode, event: Event) -> None:
    """Fold one lifecycle event into the tree's facts (restarts, last exit, held states)."""
    node = _node_for(root, event)
    if node is None:
        return
    kind = event.kind
    if kind == "child.exited":
        node.last_exit = _reason_kind(event.data.get("reason")) or node.last_exit
        if node.state == "running":
            node.state = "restarting"
    elif kind == "child.restarted":
        node.restarts += 1
        node.state = "running"
    elif kind in ("child.started", "actor.started"):
        if node.state in ("stopped", "restarting"):
            node.state = "running"
    elif kind == "run.paused" and node.type == "agent":
        reason = _reason_kind(event.data.get("reason"))
        node.state = (
            "looping" if reason == "looping" else "over_budget" if reason == "over_budget" else "paused"
        )
        node.last_exit = reason or node.last_exit
    elif kind == "agent.paused":
        node.state = "over_budget" if event.data.get("limit") else "paused"
    elif kind == "agent.unprotected" and node.type == "agent":
        node.unprotected = str(event.data.get("why") or "unprotected")
    elif kind in ("agent.resumed", "run.resumed") and node.type == "agent":
        node.state = "running"
    elif kind == "agent.upgraded" and node.type == "agent":
        node.unprotected = None  # the new version says so again at its start if it still is
        node.version = f"v{event.data.get('version')} (upgraded by {event.data.get('author')})"
    elif kind == "agent.rolled_back" and node.type == "agent":
        node.unprotected = None
        node.version = f"v{event.data.get('to')} (v{event.data.get('from')} rolled back)"
    elif kind == "agent.flagged" and node.type == "agent":
        node.version = (
            f"v{event.data.get('version')} (by {event.data.get('author')}, flagged: {event.data.get('why')})"
        )
    elif kind == "agent.drift" and node.type == "agent":
        node.drift = drift_text(event.data)


def drift_text(data: dict[str, Any]) -> str | None:
    """``agent.drift`` in a line: which keys of the config file differ from the running version."""
    changed = data.get("changed") or []
    if not changed:
        return None
    text = f"config differs from v{data.get('active')} in {', '.join(map(str, changed))}"
    if data.get("config_version") is not None:
        state = str(data.get("config_state") or "").replace("_", " ")
        text += f" (the config's is v{data['config_version']}, {state})"
    return text


def _state(value: str) -> State:
    states: dict[str, State] = {
        "paused": "paused",
        "shutdown": "paused",
        "looping": "looping",
        "over_budget": "over_budget",
        "running": "running",
    }
    return states.get(value, "paused")


class StoreView:
    """A read-only :class:`~beamish.dashboard.DashboardSource` over the store, for a stopped node."""

    def __init__(self, config: CompanyConfig, store: Any, *, services: tuple[str, ...] = ()) -> None:
        self.config = config
        self.store = store
        self.services = services

    async def tree(self) -> TreeNode:
        root = skeleton(self.config, services=self.services)
        since = 0
        while True:
            batch = await self.store.events(since, limit=5000)
            for _eid, event in batch:
                apply_event(root, event)
            since = batch[-1][0] if batch else since
            if len(batch) < 5000:
                break
        await show_running(root, self.store, self.config)
        day_start = _day_start(self.config)
        await fill_queues(root, self.store)
        for node in root.walk():
            if node.type == "agent":
                node.spent_usd = await self.store.spend(node.id, since=day_start)
            if node.state in ("running", "restarting"):
                node.state = "stopped"  # no node is running: whatever ran has stopped
        return root

    async def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        recent = await self._recent(replay)
        since = 0
        for eid, event in recent:
            since = eid
            yield event
        if not recent:
            last = await self._recent(1)
            since = last[-1][0] if last else 0
        async for _eid, event in self.store.follow(since):
            yield event

    async def _recent(self, n: int) -> list[tuple[int, Event]]:
        if n <= 0:
            return []
        row = await self.store.fetchone("SELECT MAX(id) AS m FROM events")
        top = int(row["m"] or 0) if row else 0
        result: list[tuple[int, Event]] = await self.store.events(max(0, top - n), limit=n)
        return result

    async def resume(self, agent: str) -> None:
        if agent not in self.config.agents:
            raise UnknownAgent(agent)
        raise RuntimeError("no node is running this company: start it with `beamish run`, then resume")


async def show_running(root: TreeNode, store: Any, config: CompanyConfig) -> None:
    """Each agent's caps and prices as its running version has them (and the cap status compares
    spend with), with what the file on disk would change."""
    try:  # the file as it is now, not as the node last read it
        agents = {**config.agents, **load_config(config.path).agents}
    except Exception:
        agents = config.agents
    running = await running_budgets(store, agents)
    for node in root.walk():
        found = running.get(node.id) if node.type == "agent" else None
        if found is not None:
            node.running = found.to_json()
            node.cap_usd = found.caps.get("per_day_usd")


async def fill_queues(root: TreeNode, store: Any) -> None:
    """Each agent's queue from the runs table: how many runs wait, how many are in flight."""
    counts = await store.queue_counts()
    for node in root.walk():
        if node.type == "agent":
            found = counts.get(node.id, {})
            node.queued, node.in_flight = found.get("queued", 0), found.get("running", 0)


def _day_start(config: CompanyConfig) -> float:
    """The start of today in the company's budget time zone (the per-day window)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(config.file.budget.tz or config.file.company.timezone)
    now = datetime.now(zone)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
