"""A small in-memory company that speaks the dashboard's source protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator

from beamish._events import Event
from beamish.dashboard import EventHub, TreeNode, UnknownAgent


class CompanySource:
    """A tree of three agents under two supervisors; ``resume`` un-pauses and publishes an event."""

    def __init__(self) -> None:
        self.hub = EventHub()
        self.root = TreeNode(
            "root",
            "supervisor",
            strategy="one_for_one",
            children=[
                TreeNode("ceo", "agent", spent_usd=0.12, cap_usd=3.0, next_schedule="14:00 UTC"),
                TreeNode(
                    "finance",
                    "supervisor",
                    strategy="rest_for_one",
                    children=[
                        TreeNode(
                            "cfo",
                            "agent",
                            state="paused",
                            last_exit="over_budget",
                            spent_usd=3.0,
                            cap_usd=3.0,
                        ),
                        TreeNode("accountant", "agent", restarts=2, last_exit="killed", spent_usd=0.4),
                    ],
                ),
            ],
        )
        self.resumed: list[str] = []

    def agent(self, name: str) -> TreeNode:
        for node in self.root.walk():
            if node.id == name and node.type == "agent":
                return node
        raise UnknownAgent(name)

    async def tree(self) -> TreeNode:
        return self.root

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return self.hub.subscribe(replay)

    async def resume(self, agent: str) -> None:
        node = self.agent(agent)
        node.state = "running"
        self.resumed.append(agent)
        self.hub.publish(Event("agent.resumed", agent, {}))
