"""A dashboard source that is a running node, reached over its control socket.

``beamish dashboard`` started beside a running ``beamish run`` serves the live company this way,
without sharing the node's process; :class:`NodeOrStore` reads the store while the node is stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish._tasks import cancel_and_wait
from beamish.company._approvals import ApprovalsMixin
from beamish.company._control import ControlUnavailable, control_events, control_request
from beamish.company._status import TreeNode, UnknownAgent
from beamish.company._view import StoreView


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


#: What a control request raises when no node is there (or it went away mid-answer).
_GONE = (ControlUnavailable, OSError, TimeoutError)


class NodeOrStore(ApprovalsMixin):
    """The running node while it answers, the store (read-only) while it does not, and the node
    again once it is back: ``beamish dashboard`` survives the node's stops and restarts.

    ``node_status`` tells the dashboard which of the two it reads; ``store`` is what the runs,
    events and charts pages read either way. Approvals are decided in the store, as any process
    with the store may (the node running the agent picks the run up as it wakes).
    """

    node = None  # not in this process: the approvals API has no node to wake

    def __init__(self, path: Path, config: Any, store: Any, *, recheck_s: float = 2.0) -> None:
        self.remote = RemoteView(path)
        self.offline = StoreView(config, store)
        self.path, self.config, self.store = path, config, store
        self.recheck_s = recheck_s
        self.live = True
        self.detail: str | None = None

    def _down(self, exc: BaseException) -> None:
        self.live = False
        self.detail = f"no answer on {self.path.name}" if isinstance(exc, ControlUnavailable) else str(exc)

    async def node_status(self) -> tuple[bool, str | None]:
        try:
            await control_request(self.path, {"op": "ping"}, timeout=2.0)
        except _GONE as exc:
            self._down(exc)
        else:
            self.live, self.detail = True, None
        return self.live, self.detail

    async def tree(self) -> TreeNode:
        try:
            found = await self.remote.tree()
        except _GONE as exc:
            self._down(exc)
            return await self.offline.tree()
        self.live, self.detail = True, None
        return found

    async def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        """The node's live events; while it is down, the store's, until the node answers again (the
        stream then ends, and the browser's reconnect reaches the node)."""
        try:
            async for event in self.remote.events(replay=replay):
                yield event
            return  # the node closed the stream: it is stopping
        except _GONE as exc:
            self._down(exc)
        queue: asyncio.Queue[Event] = asyncio.Queue(1000)

        async def pump() -> None:
            async for event in self.offline.events(replay=replay):
                await queue.put(event)

        task = asyncio.create_task(pump(), name="beamish-dashboard-store-events")
        try:
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), self.recheck_s)
                except TimeoutError:
                    if (await self.node_status())[0]:
                        return
                if task.done():
                    task.result()
                    return
        finally:
            await cancel_and_wait(task, timeout_s=2)

    async def resume(self, agent: str) -> None:
        try:
            await self.remote.resume(agent)
        except _GONE as exc:
            self._down(exc)
            await self.offline.resume(agent)
