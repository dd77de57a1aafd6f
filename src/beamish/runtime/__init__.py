"""The runtime: actors, refs, links and monitors, the node, and OTP supervisors (isolation "task").

The public names are re-exported from :mod:`beamish`; this package's modules are private.
"""

from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._events import EventStream
from beamish.runtime._messages import Down, Exit
from beamish.runtime._node import Node, Starter
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import Backoff, ChildCounts, ChildInfo, ChildSpec, ChildStarter, SupervisorSpec
from beamish.runtime._supervisor_ref import SupervisorRef

__all__ = [
    "Actor",
    "ActorRef",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStarter",
    "Down",
    "EventStream",
    "Exit",
    "Ignore",
    "Node",
    "Starter",
    "SupervisorRef",
    "SupervisorSpec",
]
