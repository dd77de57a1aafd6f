"""A small in-memory company that speaks the dashboard's source protocol."""

from __future__ import annotations

from _company_helpers import TreeSource
from beamish._events import Event
from beamish.dashboard import TreeNode


class CompanySource(TreeSource):
    """A tree of three agents under two supervisors; ``resume`` un-pauses and publishes an event."""

    def __init__(self) -> None:
        root = TreeNode(
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
                        TreeNode(
                            "accountant",
                            "agent",
                            restarts=2,
                            last_exit="killed",
                            spent_usd=0.4,
                            unprotected="watchdog=None",
                        ),
                    ],
                ),
            ],
        )
        super().__init__(root)
        self.resumed: list[str] = []

    async def resume(self, agent: str) -> None:
        await super().resume(agent)
        self.resumed.append(agent)
        self.hub.publish(Event("agent.resumed", agent, {}))
