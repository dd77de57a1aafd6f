"""Links and monitors between actors (OTP's ``link``/``monitor``), the node's side of them.

An abnormal exit travels over a link as an exit signal; a monitor delivers one ``Down`` message.
The actors keep their own link and monitor tables; these methods keep the two ends consistent.
"""

from __future__ import annotations

from collections.abc import Iterator

from beamish._exits import Killed
from beamish.runtime._messages import Down
from beamish.runtime._ref import EXITED, INFO, ActorRef


class NodeLinks:
    """A mixin of ``Node``: ``link``/``unlink`` and ``monitor``/``demonitor``."""

    _monitor_ids: Iterator[int]

    def link(self, a: ActorRef, b: ActorRef) -> None:
        """Link ``a`` and ``b`` (OTP ``link``): an abnormal exit of one is an exit signal to the other.

        Linking to an actor that already exited delivers its exit at once.
        """
        if a is b:
            return
        if a._state == EXITED:
            assert a._reason is not None
            b._exit_signal(a, a._reason)
            return
        if b._state == EXITED:
            assert b._reason is not None
            a._exit_signal(b, b._reason)
            return
        if a._links is None:
            a._links = set()
        a._links.add(b)
        if b._links is None:
            b._links = set()
        b._links.add(a)

    def unlink(self, a: ActorRef, b: ActorRef) -> None:
        """Remove the link between ``a`` and ``b`` (no-op if there is none)."""
        if a._links:
            a._links.discard(b)
        if b._links:
            b._links.discard(a)

    def monitor(self, watcher: ActorRef, target: ActorRef) -> int:
        """``watcher`` gets ``Down(target, reason, monitor_id)`` in ``handle_info`` when ``target`` exits.

        Returns the monitor id; monitoring a dead actor delivers ``Down`` at once.
        """
        mid = next(self._monitor_ids)
        if target._state == EXITED:
            watcher._deliver(INFO, Down(target, target._reason or Killed(), mid), None)
            return mid
        if target._monitors is None:
            target._monitors = {}
        target._monitors[mid] = watcher
        if watcher._watching is None:
            watcher._watching = {}
        watcher._watching[mid] = target
        return mid

    def demonitor(self, watcher: ActorRef, monitor_id: int) -> None:
        """Cancel a monitor ``watcher`` holds; a ``Down`` already delivered stays in its mailbox."""
        if watcher._watching:
            target = watcher._watching.pop(monitor_id, None)
            if target is not None and target._monitors:
                target._monitors.pop(monitor_id, None)
