"""A small company for the servers under fuzzing: what the dashboard and the control channel drive.

It implements their source protocol for real (a tree, an event hub, pause and resume of named
agents), so a fuzzed request reaches the same code paths as on a live node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from beamish._events import Event
from beamish.dashboard import EventHub, TreeNode, UnknownAgent


class SmallCompany:
    def __init__(self) -> None:
        self.hub = EventHub()
        self.root = TreeNode(
            "root",
            "supervisor",
            strategy="one_for_one",
            children=[TreeNode("ceo", "agent", spent_usd=0.1, cap_usd=1.0), TreeNode("cfo", "agent")],
        )
        self.hub.publish(Event("run.started", "ceo", {"run_id": "r1"}))
        self.calls: list[tuple[str, str]] = []

    def _agent(self, name: str) -> TreeNode:
        for node in self.root.walk():
            if node.id == name and node.type == "agent":
                return node
        raise UnknownAgent(name)

    async def tree(self) -> TreeNode:
        return self.root

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return self.hub.subscribe(replay)

    async def resume(self, agent: str) -> None:
        self._agent(agent).state = "running"
        self.calls.append(("resume", agent))

    async def pause(self, agent: str) -> None:
        self._agent(agent).state = "paused"
        self.calls.append(("pause", agent))
