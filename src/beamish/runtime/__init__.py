"""The runtime: actors, refs, links and monitors, the node, and OTP supervisors (isolation "task").

This is the runtime's lower-level API, as ``trio.lowlevel`` is trio's: the names an application
writes every day (``Node``, ``Actor``, ``ChildSpec`` …) are also at :mod:`beamish`'s top level;
clocks, child counts, event streams, ``exit_from_json`` and ``watch_loop`` are here only. This
package's modules are private.
"""

from beamish._clock import SYSTEM_CLOCK, Clock, SystemClock
from beamish._exits import exit_from_json
from beamish._exports import claim_public_module as _claim_public_module
from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._events import EventStream
from beamish.runtime._loopwatch import watch_loop
from beamish.runtime._messages import Down, Exit
from beamish.runtime._node import Node, Starter
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import Backoff, ChildCounts, ChildInfo, ChildSpec, ChildStarter, SupervisorSpec
from beamish.runtime._supervisor_ref import SupervisorRef

__all__ = [
    "SYSTEM_CLOCK",
    "Actor",
    "ActorRef",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStarter",
    "Clock",
    "Down",
    "EventStream",
    "Exit",
    "Ignore",
    "Node",
    "Starter",
    "SupervisorRef",
    "SupervisorSpec",
    "SystemClock",
    "exit_from_json",
    "watch_loop",
]

_claim_public_module(globals(), __all__, __name__)
