"""A company's status model: the tree of agents, their state, and the live event stream.

The dashboard, the control channel and ``beamish status`` all read a company through it, so it
lives with the company and the web layer imports it from here. The web layer knows nothing of
nodes or stores: it asks a :class:`DashboardSource` for a tree
snapshot, a live event stream and to resume an agent. The node implements it for real; anything
else that can answer these three questions (a store reader, a test double) can be shown the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from beamish._events import Event

State = Literal["running", "restarting", "paused", "looping", "over_budget", "stopped", "store_unavailable"]


@dataclass
class TreeNode:
    """One supervisor or worker as the dashboard and ``beamish status`` show it."""

    id: str
    type: Literal["supervisor", "worker", "agent", "service"] = "worker"
    state: State = "running"
    strategy: str | None = None
    restarts: int = 0
    last_exit: str | None = None
    spent_usd: float | None = None
    cap_usd: float | None = None
    next_schedule: str | None = None
    #: An agent's definition version, with its last upgrade or rollback (``beamish.upgrade``).
    version: str | None = None
    #: How the agent's definition in the config file differs from the version it runs, if it does.
    drift: str | None = None
    #: Why an agent runs with no watchdog and no loop detector (``watchdog=None``), or None.
    unprotected: str | None = None
    #: The running version's budget: ``{"version", "caps", "prices", "on_disk"}`` (``on_disk``: how
    #: ``beamish.toml`` on disk differs), or None where no version is recorded.
    running: dict[str, Any] | None = None
    #: An agent's queue: runs waiting, and runs in flight (``None``: not known, e.g. not an agent).
    queued: int | None = None
    in_flight: int | None = None
    children: list[TreeNode] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "strategy": self.strategy,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "spent_usd": self.spent_usd,
            "cap_usd": self.cap_usd,
            "next_schedule": self.next_schedule,
            "version": self.version,
            "drift": self.drift,
            "unprotected": self.unprotected,
            "queued": self.queued,
            "in_flight": self.in_flight,
            "running": self.running,
            "children": [c.to_json() for c in self.children],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TreeNode:
        return cls(
            id=str(data["id"]),
            type=data.get("type", "worker"),
            state=data.get("state", "running"),
            strategy=data.get("strategy"),
            restarts=int(data.get("restarts", 0)),
            last_exit=data.get("last_exit"),
            spent_usd=data.get("spent_usd"),
            cap_usd=data.get("cap_usd"),
            next_schedule=data.get("next_schedule"),
            version=data.get("version"),
            drift=data.get("drift"),
            unprotected=data.get("unprotected"),
            queued=data.get("queued"),
            in_flight=data.get("in_flight"),
            running=data.get("running"),
            children=[cls.from_json(c) for c in data.get("children", [])],
        )

    def walk(self) -> list[TreeNode]:
        """This node and all below it, depth first in start order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


class UnknownAgent(KeyError):
    """``resume`` named an agent the source does not know."""


@runtime_checkable
class DashboardSource(Protocol):
    """The three things the dashboard asks of a company."""

    async def tree(self) -> TreeNode:
        """A snapshot of the supervision tree, with state, restarts, spend per agent."""
        ...

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        """Up to ``replay`` recent events, then live ones as they happen (until the consumer stops)."""
        ...

    async def resume(self, agent: str) -> None:
        """Un-pause ``agent`` (budget, loop); raise :class:`UnknownAgent` if there is none."""
        ...


class EventHub:
    """Fan-out of events to any number of live subscribers, with a short replay buffer.

    A slow subscriber loses its oldest undelivered events rather than slowing the node down.
    """

    def __init__(self, keep: int = 200, per_subscriber: int = 1000) -> None:
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._per_subscriber = per_subscriber

    def publish(self, event: Event) -> None:
        self._recent.append(event)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @property
    def recent(self) -> list[Event]:
        return list(self._recent)

    async def subscribe(self, replay: int = 50) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._per_subscriber)
        backlog = list(self._recent)[-replay:] if replay > 0 else []
        self._subscribers.add(queue)
        try:
            for event in backlog:
                yield event
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
