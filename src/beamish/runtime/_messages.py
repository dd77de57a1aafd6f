"""Messages the runtime itself delivers to ``handle_info``: ``Down`` (monitors) and ``Exit`` (links)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from beamish._exits import ExitReason

if TYPE_CHECKING:
    from beamish.runtime._ref import ActorRef


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored actor exited (OTP's ``{'DOWN', MRef, process, Pid, Reason}``).

    ``monitor`` is the id ``node.monitor`` returned, so a watcher can tell its monitors apart.
    """

    ref: ActorRef
    reason: ExitReason
    monitor: int = 0


@dataclass(frozen=True, slots=True)
class Exit:
    """A linked actor exited; delivered instead of exiting when the receiver traps exits."""

    ref: ActorRef
    reason: ExitReason
