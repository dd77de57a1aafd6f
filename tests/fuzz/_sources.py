"""A small company for the servers under fuzzing: what the dashboard and the control channel drive.

It implements their source protocol for real (a tree, an event hub, pause and resume of named
agents), so a fuzzed request reaches the same code paths as on a live node.
"""

from __future__ import annotations

from _company_helpers import TreeSource
from beamish._events import Event
from beamish.dashboard import TreeNode


class SmallCompany(TreeSource):
    def __init__(self) -> None:
        root = TreeNode(
            "root",
            "supervisor",
            strategy="one_for_one",
            children=[TreeNode("ceo", "agent", spent_usd=0.1, cap_usd=1.0), TreeNode("cfo", "agent")],
        )
        super().__init__(root)
        self.hub.publish(Event("run.started", "ceo", {"run_id": "r1"}))
        self.calls: list[tuple[str, str]] = []

    async def resume(self, agent: str) -> None:
        await super().resume(agent)
        self.calls.append(("resume", agent))

    async def pause(self, agent: str) -> None:
        await super().pause(agent)
        self.calls.append(("pause", agent))
