"""A dashboard source that is a running node, reached over its control socket.

``beamish dashboard`` started beside a running ``beamish run`` serves the live company this way,
without sharing the node's process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from beamish._events import Event
from beamish.company._control import control_events, control_request
from beamish.company._status import TreeNode, UnknownAgent


class RemoteView:
    """:class:`~beamish.dashboard.DashboardSource` over the control channel at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def tree(self) -> TreeNode:
        return TreeNode.from_json(await control_request(self.path, {"op": "tree"}))

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return control_events(self.path, replay=replay)

    async def resume(self, agent: str) -> None:
        try:
            await control_request(self.path, {"op": "resume", "agent": agent})
        except RuntimeError as exc:
            if str(exc).startswith("no agent named"):
                raise UnknownAgent(agent) from None
            raise

    async def pause(self, agent: str) -> None:
        await control_request(self.path, {"op": "pause", "agent": agent})
