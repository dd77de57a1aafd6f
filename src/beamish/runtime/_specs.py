"""Child and supervisor specs: frozen, validated up front, OTP's defaults defined once.

Validation follows OTP's ``supervisor:check_childspec``: a bad value raises ``SpecError`` naming the
child, the key and the value, before anything starts, so a bad spec never disturbs a running tree.

What ``ChildSpec.start`` may be:

* an :class:`~beamish.Actor` subclass — spawned with ``args``/``kwargs``, its ``init`` run inside the
  start;
* a :class:`SupervisorSpec` — a nested supervisor (trees nest);
* any object implementing the :class:`ChildStarter` protocol (``AgentSpec`` does)::

      async def start_child(self, node: Node, spec: ChildSpec) -> ActorRef

  It must return the ref of a started actor, or raise ``Ignore`` (OTP's ``ignore``) or any exception
  (a failed start). It may set ``child_type = "supervisor"`` to be counted as one.

With ``isolation="process"`` the node hands the start to the starter registered with
``Node.register_isolation("process", starter)``, whatever ``start`` is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from beamish._exceptions import SpecError
from beamish.runtime._actor import Actor

if TYPE_CHECKING:
    from beamish.runtime._node import Node
    from beamish.runtime._ref import ActorRef

Restart = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
Shutdown = float | Literal["brutal_kill", "infinity"]

RESTARTS = ("permanent", "transient", "temporary")
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")
ISOLATIONS = ("task", "process")
#: OTP's default shutdown for workers (5000 ms); supervisors default to ``"infinity"``.
WORKER_SHUTDOWN_S = 5.0


@runtime_checkable
class ChildStarter(Protocol):
    """Anything that can start a child for a supervisor (see the module docstring)."""

    async def start_child(self, node: Node, spec: ChildSpec) -> ActorRef: ...


def _bad(owner: str, key: str, value: Any, expected: str) -> SpecError:
    return SpecError(f"{owner}: {key}={value!r} is invalid: expected {expected}")


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _non_negative_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


@dataclass(frozen=True)
class Backoff:
    """Delayed restarts for one child: ``min_s`` doubling up to ``max_s``, ± ``jitter`` (a fraction).

    After the child has run ``reset_after_s`` without failing, the delay starts from ``min_s`` again.
    So an outage of some upstream API is not a restart storm.
    """

    min_s: float = 0.1
    max_s: float = 30.0
    jitter: float = 0.2
    reset_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not _non_negative_number(self.min_s):
            raise _bad("Backoff", "min_s", self.min_s, "a number >= 0")
        if not _non_negative_number(self.max_s) or self.max_s < self.min_s:
            raise _bad("Backoff", "max_s", self.max_s, f"a number >= min_s ({self.min_s})")
        if not _non_negative_number(self.jitter) or self.jitter > 1:
            raise _bad("Backoff", "jitter", self.jitter, "a fraction between 0 and 1")
        if not _positive_number(self.reset_after_s):
            raise _bad("Backoff", "reset_after_s", self.reset_after_s, "a number > 0")

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """The delay before restart number ``attempt`` (1-based); ``rand`` in [0, 1) draws the jitter."""
        base = min(self.max_s, self.min_s * (2.0 ** max(0, attempt - 1)))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (OTP's child spec).

    ``shutdown`` defaults to 5 s for workers and ``"infinity"`` for supervisors, as in OTP.
    ``max_memory_mb`` and ``hang_after_s`` apply to ``isolation="process"`` children only.
    """

    id: Any
    start: Any
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    significant: bool = False
    isolation: Literal["task", "process"] = "task"
    backoff: Backoff | None = None
    max_memory_mb: float | None = None
    hang_after_s: float | None = None

    def __post_init__(self) -> None:
        owner = f"ChildSpec {self.id!r}"
        try:
            hash(self.id)
        except TypeError:
            raise _bad("ChildSpec", "id", self.id, "a hashable value such as a string") from None
        if self.id is None:
            raise _bad("ChildSpec", "id", self.id, "a hashable value such as a string")
        if not _valid_start(self.start):
            raise _bad(
                owner,
                "start",
                self.start,
                "an Actor subclass, a SupervisorSpec, or an object with async start_child(node, spec)",
            )
        if isinstance(self.args, list):
            object.__setattr__(self, "args", tuple(self.args))
        if not isinstance(self.args, tuple):
            raise _bad(owner, "args", self.args, "a tuple of positional arguments")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise _bad(owner, "kwargs", self.kwargs, "a mapping of keyword arguments")
        if self.restart not in RESTARTS:
            raise _bad(owner, "restart", self.restart, "one of " + ", ".join(map(repr, RESTARTS)))
        if self.shutdown is None:
            default: Shutdown = "infinity" if self.child_type == "supervisor" else WORKER_SHUTDOWN_S
            object.__setattr__(self, "shutdown", default)
        elif self.shutdown not in ("brutal_kill", "infinity") and not _positive_number(self.shutdown):
            raise _bad(owner, "shutdown", self.shutdown, "seconds > 0, 'brutal_kill' or 'infinity'")
        if not isinstance(self.significant, bool):
            raise _bad(owner, "significant", self.significant, "True or False")
        if self.significant and self.restart == "permanent":
            raise _bad(owner, "significant", True, "False for a permanent child (OTP refuses it)")
        if self.isolation not in ISOLATIONS:
            raise _bad(owner, "isolation", self.isolation, "one of " + ", ".join(map(repr, ISOLATIONS)))
        if self.isolation == "process" and isinstance(self.start, SupervisorSpec):
            raise _bad(owner, "isolation", self.isolation, "'task' for a nested supervisor")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise _bad(owner, "backoff", self.backoff, "a Backoff(...) or None")
        for key in ("max_memory_mb", "hang_after_s"):
            value = getattr(self, key)
            if value is None:
                continue
            if not _positive_number(value):
                raise _bad(owner, key, value, "a number > 0 or None")
            if self.isolation != "process":
                raise _bad(owner, key, value, "None unless isolation='process' (a task cannot be limited)")

    @property
    def child_type(self) -> str:
        """``"supervisor"`` or ``"worker"``, as ``which_children`` reports it."""
        if isinstance(self.start, SupervisorSpec):
            return "supervisor"
        return str(getattr(self.start, "child_type", "worker"))


def _valid_start(start: Any) -> bool:
    if isinstance(start, type):
        return issubclass(start, Actor)
    if isinstance(start, SupervisorSpec):
        return True
    return callable(getattr(start, "start_child", None))


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its children (started in order), strategy, restart intensity and auto_shutdown.

    More than ``intensity`` restarts within ``period`` seconds (a sliding window on the node's clock)
    make the supervisor stop its children and exit ``Shutdown``, so its parent decides (escalation).
    A ``simple_one_for_one`` supervisor has exactly one child spec, the template for ``start_child``.
    """

    children: Sequence[ChildSpec] = ()
    strategy: Strategy = "one_for_one"
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: AutoShutdown = "never"

    def __post_init__(self) -> None:
        owner = "SupervisorSpec"
        if isinstance(self.children, ChildSpec) or not isinstance(self.children, Sequence):
            raise _bad(owner, "children", self.children, "a list of ChildSpec")
        object.__setattr__(self, "children", tuple(self.children))
        if self.strategy not in STRATEGIES:
            raise _bad(owner, "strategy", self.strategy, "one of " + ", ".join(map(repr, STRATEGIES)))
        if not isinstance(self.intensity, int) or isinstance(self.intensity, bool) or self.intensity < 0:
            raise _bad(owner, "intensity", self.intensity, "an integer >= 0")
        if not _positive_number(self.period):
            raise _bad(owner, "period", self.period, "seconds > 0")
        if self.auto_shutdown not in AUTO_SHUTDOWNS:
            raise _bad(
                owner, "auto_shutdown", self.auto_shutdown, "one of " + ", ".join(map(repr, AUTO_SHUTDOWNS))
            )
        seen: set[Any] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise _bad(owner, "children", child, "ChildSpec entries")
            if child.id in seen:
                raise _bad(owner, "children", child.id, "unique child ids (this id appears twice)")
            seen.add(child.id)
            self.check_child(child)
        if self.strategy == "simple_one_for_one" and len(self.children) != 1:
            raise _bad(
                owner, "children", len(self.children), "exactly one template ChildSpec for simple_one_for_one"
            )

    def check_child(self, child: ChildSpec) -> None:
        """Refuse a child this supervisor cannot hold (also used by ``start_child``)."""
        if child.significant and self.auto_shutdown == "never":
            raise _bad(
                f"ChildSpec {child.id!r}",
                "significant",
                True,
                "False when the supervisor's auto_shutdown is 'never'",
            )


@dataclass(frozen=True)
class ChildInfo:
    """One row of ``which_children``: ``ref`` is ``None`` while the child is not running."""

    id: Any
    ref: ActorRef | None
    type: str
    restart: str
    restarts: int
    restarting: bool = False


@dataclass(frozen=True)
class ChildCounts:
    """``count_children``: specs, running children, and how many are supervisors / workers."""

    specs: int
    active: int
    supervisors: int
    workers: int
