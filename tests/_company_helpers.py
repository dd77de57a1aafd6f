"""An in-memory company for tests of what drives one: the dashboard and the control channel.

It speaks their source protocol for real (a tree, an event hub, pause and resume of named agents),
so a request reaches the same server code as on a live node. Test folders subclass it for their
own tree and for what they record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from beamish._events import Event
from beamish.dashboard import EventHub, TreeNode, UnknownAgent


class TreeSource:
    """A fixed tree under ``root``; pause and resume set the named agent's state."""

    def __init__(self, root: TreeNode) -> None:
        self.hub = EventHub()
        self.root = root

    def agent(self, name: str) -> TreeNode:
        """The agent called ``name``; :class:`UnknownAgent` when the tree has none (or it is a supervisor)."""
        for node in self.root.walk():
            if node.id == name and node.type == "agent":
                return node
        raise UnknownAgent(name)

    async def tree(self) -> TreeNode:
        return self.root

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return self.hub.subscribe(replay)

    async def pause(self, agent: str) -> None:
        self.agent(agent).state = "paused"

    async def resume(self, agent: str) -> None:
        self.agent(agent).state = "running"
