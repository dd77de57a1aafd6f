"""Hook points of the agent loop, where budgets, the watchdog and the loop detector plug in.

The loop calls the hooks at fixed points and knows nothing of what they enforce. A hook may raise
:class:`~beamish.errors.PauseRun` (park the run, e.g. over budget or looping) or
:class:`~beamish.errors.AbortRun` (fail the run) — control flow the loop turns into a run status,
never a crash.

Which hooks an agent gets: ``AgentSpec.hooks`` (an ``AgentHooks`` factory, or its import path as
``"module:function"`` so a process-isolated agent can rebuild it), else, when the spec has a
``budget``, a ``watchdog`` or a ``policy`` (which those hooks apply) — every spec has a watchdog
unless it says ``watchdog=None`` — the semantic guard (``beamish.agent._guard.make_hooks``), else
:class:`NullHooks`. A factory is called as ``factory(spec, store, clock)``. :func:`unprotected` says
when the hooks an agent ends up with watch nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from beamish._clock import Clock
from beamish._exceptions import SpecError
from beamish.agent._messages import ModelRequest, ModelResponse

if TYPE_CHECKING:
    from beamish.agent._spec import AgentSpec


@dataclass(frozen=True)
class RunInfo:
    """Which run a hook is called for: the agent, the run, the step about to be (or just) taken,
    the model's registry name, and whether the step is being replayed from the journal."""

    agent: str
    run_id: str
    seq: int
    model: str
    replaying: bool = False


@runtime_checkable
class AgentHooks(Protocol):
    """What the loop calls. Every method has a no-op default in :class:`NullHooks`."""

    async def before_run(self, run: RunInfo) -> None:
        """The run is about to start (or resume). May raise ``PauseRun`` (e.g. the agent is paused)."""

    async def before_model_call(self, run: RunInfo, request: ModelRequest) -> Any:
        """A live model call is next. May raise ``PauseRun``. The return value (e.g. a budget
        reservation) is handed back to ``after_model_call`` or ``model_call_failed``."""

    async def after_model_call(
        self, run: RunInfo, request: ModelRequest, response: ModelResponse, token: Any
    ) -> float:
        """The call answered; return its cost in USD (journaled with the step)."""

    async def model_call_failed(
        self, run: RunInfo, request: ModelRequest, token: Any, error: BaseException
    ) -> None:
        """The call failed for good (or was interrupted): release what ``before_model_call`` held."""

    async def after_step(self, run: RunInfo, kind: str, name: str, result: str, is_error: bool) -> str | None:
        """A step finished (live or replayed). May raise ``PauseRun``/``AbortRun``; may return a
        nudge — text the loop adds as a user message (journaled) before the next model call."""

    async def after_run(self, run: RunInfo, status: str) -> None:
        """The run ended with ``status``."""

    def heartbeat(self, what: str) -> None:
        """Progress: a streamed chunk, a tool's ``ctx.progress()``."""

    def extend(self, seconds: float) -> None:
        """A tool expects ``seconds`` of silence (``ctx.extend``)."""

    def rate_limited(self, seconds: float) -> None:
        """The loop is about to wait ``seconds`` for a 429's Retry-After: not a hang."""


class NullHooks:
    """Hooks that enforce nothing and price nothing. Subclass and override what you need."""

    async def before_run(self, run: RunInfo) -> None:
        return None

    async def before_model_call(self, run: RunInfo, request: ModelRequest) -> Any:
        return None

    async def after_model_call(
        self, run: RunInfo, request: ModelRequest, response: ModelResponse, token: Any
    ) -> float:
        return 0.0

    async def model_call_failed(
        self, run: RunInfo, request: ModelRequest, token: Any, error: BaseException
    ) -> None:
        return None

    async def after_step(self, run: RunInfo, kind: str, name: str, result: str, is_error: bool) -> str | None:
        return None

    async def after_run(self, run: RunInfo, status: str) -> None:
        return None

    def heartbeat(self, what: str) -> None:
        return None

    def extend(self, seconds: float) -> None:
        return None

    def rate_limited(self, seconds: float) -> None:
        return None


#: Where the budget / watchdog / loop-detector hooks are made (imported only when a spec needs them).
SEMANTIC_HOOKS = "beamish.agent._guard:make_hooks"

HooksFactory = Callable[["AgentSpec", Any, Clock], AgentHooks]


def import_path(path: str, what: str) -> Any:
    """``"package.module:attribute"`` → the attribute; a ``SpecError`` naming ``what`` if it fails."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise SpecError(f"{what} {path!r} must look like 'package.module:name'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{what} {path!r} cannot be imported: {exc}") from exc
    return obj


def resolve_hooks(spec: AgentSpec, store: Any, clock: Clock) -> AgentHooks:
    """The hooks for an agent, per the module docstring."""
    factory: Any = spec.hooks
    if isinstance(factory, str):
        factory = import_path(factory, f"agent {spec.name!r}: hooks")
    if factory is None and any(x is not None for x in (spec.budget, spec.watchdog, spec.policy)):
        try:
            semantic = importlib.import_module("beamish.agent._guard")
        except ImportError:
            semantic = None
        factory = getattr(semantic, "make_hooks", None)
    if factory is None:
        return NullHooks()
    hooks = factory(spec, store, clock)
    if not isinstance(hooks, AgentHooks):
        raise SpecError(f"agent {spec.name!r}: the hooks factory returned {hooks!r}, not AgentHooks")
    return hooks


def unprotected(spec: AgentSpec, hooks: Any) -> str | None:
    """Why an agent with ``hooks`` runs with no watchdog and no loop detector, or None when it has
    them: the semantic guard (perhaps wrapped, e.g. by telemetry) with a watchdog."""
    found = hooks
    while found is not None and not hasattr(found, "protects"):
        found = getattr(found, "inner", None)
    if found is not None and found.protects:
        return None
    if spec.hooks is not None:
        return "its own hooks have no watchdog"
    return "watchdog=None"
