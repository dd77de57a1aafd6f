"""beamish: an OTP-style runtime that keeps teams of LLM agents alive and honest."""

import contextlib

from beamish._clock import SYSTEM_CLOCK, Clock, SystemClock
from beamish._exceptions import (
    ActorError,
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    BeamishError,
    CallTimeout,
    ConfigError,
    ConsultCycle,
    ConsultDeadline,
    ConsultError,
    CorruptStore,
    Divergence,
    Fenced,
    IsolationError,
    MemoryGraphError,
    ModelError,
    ModelServerError,
    ModelTimeout,
    ModelUnavailable,
    NameTaken,
    NotFound,
    PricingError,
    RateLimited,
    Restarting,
    RunError,
    Running,
    RunNotFound,
    ScheduleError,
    SimpleOneForOneError,
    SpecError,
    StartFailed,
    StoreError,
    StoreVersionError,
    SupervisorError,
    ToolError,
    UnknownOutcome,
)
from beamish._exits import (
    Crashed,
    ExitReason,
    Hung,
    Killed,
    Looping,
    MemoryExceeded,
    Normal,
    OverBudget,
    Shutdown,
    exit_from_json,
)
from beamish.agent._budget import Budget
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
from beamish.runtime import (
    Actor,
    ActorRef,
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildStarter,
    Down,
    EventStream,
    Exit,
    Ignore,
    Node,
    SupervisorRef,
    SupervisorSpec,
)
from beamish.runtime._loopwatch import watch_loop
from beamish.schedule import Schedule, SchedulerActor
from beamish.upgrade import ProbationRules, Upgrader

__version__ = "0.1.0"

__all__ = [
    "SYSTEM_CLOCK",
    "Actor",
    "ActorError",
    "ActorExited",
    "ActorRef",
    "AgentSpec",
    "AlreadyPresent",
    "AlreadyStarted",
    "Backoff",
    "BeamishError",
    "Budget",
    "CallTimeout",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStarter",
    "Clock",
    "ConfigError",
    "ConsultCycle",
    "ConsultDeadline",
    "ConsultError",
    "CorruptStore",
    "Crashed",
    "Divergence",
    "Down",
    "EventStream",
    "Exit",
    "ExitReason",
    "Fenced",
    "Hung",
    "Ignore",
    "IsolationError",
    "Killed",
    "Looping",
    "Mailboxes",
    "McpServer",
    "MemoryExceeded",
    "MemoryGraphError",
    "ModelError",
    "ModelServerError",
    "ModelTimeout",
    "ModelUnavailable",
    "NameTaken",
    "Node",
    "Normal",
    "NotFound",
    "OverBudget",
    "Policy",
    "Price",
    "PricingError",
    "ProbationRules",
    "PubSub",
    "RateLimited",
    "Restarting",
    "RetryPolicy",
    "RunContext",
    "RunError",
    "RunNotFound",
    "RunResult",
    "Running",
    "Schedule",
    "ScheduleError",
    "SchedulerActor",
    "Shutdown",
    "SimpleOneForOneError",
    "SpecError",
    "StartFailed",
    "StoreError",
    "StoreVersionError",
    "SupervisorError",
    "SupervisorRef",
    "SupervisorSpec",
    "SystemClock",
    "ToolContext",
    "ToolError",
    "UnknownOutcome",
    "Upgrader",
    "Watchdog",
    "__version__",
    "current_run",
    "durable",
    "exit_from_json",
    "step",
    "tool",
    "watch_loop",
]


def _claim_public_module() -> None:
    """Exported classes and functions report ``beamish`` as their module (as httpx does)."""
    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        if isinstance(obj, type) or callable(obj):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = "beamish"


_claim_public_module()
