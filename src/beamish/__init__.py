"""beamish: an OTP-style runtime that keeps teams of LLM agents alive and honest.

The top level holds the names an application writes. Every error, and the control-flow signals a hook
raises, live in :mod:`beamish.errors` (the common errors are re-exported here); the runtime's
lower-level API (clocks, child counts, event streams, ``exit_from_json``, ``watch_loop``) is
:mod:`beamish.runtime`, as ``trio.lowlevel`` is trio's; live upgrades are :mod:`beamish.upgrade`.
"""

from beamish import errors as errors
from beamish._exits import (
    ContextFull,
    Crashed,
    ExitReason,
    Hung,
    Killed,
    Looping,
    MemoryExceeded,
    Normal,
    OverBudget,
    Shutdown,
)
from beamish._exports import claim_public_module as _claim_public_module
from beamish._version import __version__
from beamish.agent._approval import ApprovalRule
from beamish.agent._breaker import BreakerPolicy
from beamish.agent._budget import Budget
from beamish.agent._context import ContextLimit
from beamish.agent._gates import Gate
from beamish.agent._mcp_tools import McpServer
from beamish.agent._policy import Policy
from beamish.agent._pricing import Price
from beamish.agent._results import RunResult
from beamish.agent._spec import AgentSpec
from beamish.agent._tools import ToolContext, tool
from beamish.agent._watchdog import Watchdog
from beamish.agent.models._retry import RetryPolicy
from beamish.bus import Mailboxes, PubSub
from beamish.byo import RunContext, current_run, durable, step
from beamish.errors import (
    ActorExited,
    BeamishError,
    CallTimeout,
    ConfigError,
    ModelError,
    SpecError,
    StartFailed,
    StoreError,
    ToolError,
)
from beamish.runtime import (
    Actor,
    ActorRef,
    Backoff,
    ChildSpec,
    Down,
    Exit,
    Ignore,
    Node,
    SupervisorRef,
    SupervisorSpec,
)
from beamish.schedule import Schedule, SchedulerActor

__all__ = [
    "Actor",
    "ActorExited",
    "ActorRef",
    "AgentSpec",
    "ApprovalRule",
    "Backoff",
    "BeamishError",
    "BreakerPolicy",
    "Budget",
    "CallTimeout",
    "ChildSpec",
    "ConfigError",
    "ContextFull",
    "ContextLimit",
    "Crashed",
    "Down",
    "Exit",
    "ExitReason",
    "Gate",
    "Hung",
    "Ignore",
    "Killed",
    "Looping",
    "Mailboxes",
    "McpServer",
    "MemoryExceeded",
    "ModelError",
    "Node",
    "Normal",
    "OverBudget",
    "Policy",
    "Price",
    "PubSub",
    "RetryPolicy",
    "RunContext",
    "RunResult",
    "Schedule",
    "SchedulerActor",
    "Shutdown",
    "SpecError",
    "StartFailed",
    "StoreError",
    "SupervisorRef",
    "SupervisorSpec",
    "ToolContext",
    "ToolError",
    "Watchdog",
    "__version__",
    "current_run",
    "durable",
    "step",
    "tool",
]


# Errors keep ``beamish.errors`` as their home; every other name reports ``beamish``.
_claim_public_module(globals(), [n for n in __all__ if n not in errors.__all__], __name__)
