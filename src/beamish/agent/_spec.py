"""``AgentSpec``: everything that defines an agent, validated up front, and a valid ``ChildSpec.start``.

A spec crosses a process boundary as JSON (``to_json`` / ``from_json``): the model is a registry
string, tools are import paths of module-level ``@beamish.tool`` objects (or the built-in names
``"consult"`` and MCP server specs), and hooks a factory path. So a process-isolated agent re-creates
its spec, model and tools in its own process. ``budget`` and ``watchdog`` are typed loosely (any
object the hooks understand); they travel by their ``to_json``/``from_mapping`` if they have them.
Positional order as the design fixes it: ``AgentSpec(name, instructions, model, tools, budget,
watchdog)``. ``watchdog`` defaults to ``Watchdog()``: an agent is protected unless its author says
``watchdog=None``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, cast

from beamish._exceptions import SpecError
from beamish.agent._approval import parse_rules
from beamish.agent._breaker import BreakerPolicy
from beamish.agent._context import ContextLimit
from beamish.agent._hooks import import_path
from beamish.agent._mcp_tools import McpServer
from beamish.agent._tools import Tool
from beamish.agent._watchdog import Watchdog
from beamish.agent.models._registry import parse_model_string
from beamish.agent.models._retry import RetryPolicy
from beamish.runtime import Backoff, ChildSpec

if TYPE_CHECKING:
    from beamish.agent._runs import Runs
    from beamish.runtime import ActorRef, ChildSpec, Node

_VERSION = 1
#: The most runs one agent serves at once.
MAX_CONCURRENCY = 10_000
BUILTIN_TOOLS = ("consult", "ask_human")
_ISOLATIONS = ("task", "process")
_RESTARTS = ("permanent", "transient", "temporary")
#: Every agent's watchdog unless its author says ``watchdog=None`` (then it runs unprotected).
PROTECTED = Watchdog()
#: Every agent's context management unless its author says ``context=None``.
DEFAULT_CONTEXT = ContextLimit()


def tool_path(tool: Tool) -> str:
    """The import path a process-isolated agent finds ``tool`` by; refuses tools defined in functions."""
    module = getattr(tool.fn, "__module__", None)
    for attr in (tool.fn.__name__, tool.name):
        if module and module != "__main__":
            try:
                if getattr(importlib.import_module(module), attr, None) is tool:
                    return f"{module}:{attr}"
            except ImportError:
                break
    raise SpecError(
        f"tool {tool.name!r} must be a module-level @beamish.tool in an importable module (not __main__ "
        "or a function body) for its agent to run with isolation='process'"
    )


def _positive(owner: str, key: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SpecError(f"{owner}: {key}={value!r} is invalid: expected a number > 0")


@dataclass(frozen=True)
class AgentSpec:
    """An agent: its name, instructions, model, tools and limits.

    ``model``: ``"anthropic:<model>"``, ``"openai:<model>"`` or ``"scripted:<file>"`` (or a ``Model``
    object, for task isolation only), or an ordered list of them: a step whose model is down (its
    retries spent, or its circuit breaker open, see ``breaker``) goes to the next. ``model_options``
    are passed to every model (``base_url``, timeouts); under a model's own name, to that one only.
    ``tools``: ``@beamish.tool`` functions, ``"consult"``, MCP servers (``McpServer``).
    ``isolation``: ``"process"`` (default: its own OS process) or ``"task"``.
    ``budget``, ``watchdog``, ``policy``: semantic supervision (``beamish.Budget``, ``beamish.Watchdog``,
    ``beamish.Policy``), enforced through the loop's hooks. ``watchdog`` defaults to ``Watchdog()``
    — hang, stream stall and step limits, and the loop detector with its nudge → pause → stop ladder;
    ``watchdog=None`` means **no protection** (the agent's start is then an ``agent.unprotected``
    event and ``status`` marks it). ``restart``: the supervisor's restart type. ``max_turns`` is a
    hard backstop on model calls per run, whatever the watchdog says.
    ``consults``: the agents it may consult (None: any). ``retry``: a ``RetryPolicy`` for model calls
    (429s, 5xx, timeouts). ``hooks``: an ``AgentHooks`` factory (or its import path), see ``_hooks``.
    ``hang_after_s``: how long a process-isolated agent's event loop may be blocked before the node
    kills it as hung (None: its watchdog's ``hang_after_s``). ``capture_content``: put prompts,
    replies and tool arguments (redacted) on the OpenTelemetry
    spans — off by default. ``entry``: ``"package.module:function"``, an async ``(task, ctx) ->
    answer`` run in place of beamish's loop — an agent written with another framework, made durable
    through ``beamish.durable`` and ``beamish.step`` (each request is priced by the model it names;
    ``model`` prices one that names none).
    ``concurrency``: how many runs it serves at once (default 1). ``context``: a ``ContextLimit``
    — the model's context window (from genai-prices unless given) and the policy as the
    conversation fills it: ``"compact"`` (default: summarize older turns, a journaled ``compact``
    step), ``"trim"`` or ``"fail"``; ``context=None`` leaves the conversation unmanaged.
    """

    name: str
    instructions: str
    model: Any
    tools: Sequence[Any] = ()
    budget: Any = None
    watchdog: Any = PROTECTED
    policy: Any = None
    isolation: Literal["task", "process"] = "process"
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int = 4096
    max_turns: int = 200
    consult_deadline_s: float = 120.0
    consults: Sequence[str] | None = None
    hooks: Any = None
    retry: Any = None
    capture_content: bool = False
    shutdown: float = 5.0
    backoff: Any = None
    max_memory_mb: float | None = None
    hang_after_s: float | None = None
    entry: str | None = None
    #: How many runs the agent serves at once (each with its own journal, watchdog and budget
    #: reservations), as asyncio tasks in its node or in its one process.
    concurrency: int = 1
    #: Which stored version of the agent's definition this is (``beamish.upgrade``); runs record it.
    version: int | None = None
    #: ``ApprovalRule``s (or their mappings): tool calls of this agent that wait for a person first.
    approvals: Sequence[Any] = ()
    #: When a model's circuit breaker opens and probes (``beamish.BreakerPolicy``; None: defaults).
    breaker: Any = None
    #: ``ContextLimit`` (or its mapping): the model's context window and what the agent does as its
    #: conversation fills it (compact by default); ``None`` leaves the conversation unmanaged.
    context: Any = DEFAULT_CONTEXT

    #: Reported as the child's type in ``which_children``.
    child_type = "worker"

    def __post_init__(self) -> None:
        owner = f"AgentSpec {self.name!r}"
        if not isinstance(self.name, str) or not self.name or not self.name.replace("-", "_").isidentifier():
            raise SpecError(f"AgentSpec: name={self.name!r} is invalid: expected a word like 'marketing'")
        self._check_models(owner)
        self._check_tools(owner)
        if self.isolation not in _ISOLATIONS:
            raise SpecError(f"{owner}: isolation={self.isolation!r} is invalid: expected 'task' or 'process'")
        if self.restart not in _RESTARTS:
            raise SpecError(
                f"{owner}: restart={self.restart!r} is invalid: expected one of {list(_RESTARTS)}"
            )
        for key in ("max_tokens", "max_turns", "concurrency"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"{owner}: {key}={value!r} is invalid: expected a whole number >= 1")
        if self.concurrency > MAX_CONCURRENCY:
            raise SpecError(
                f"{owner}: concurrency={self.concurrency!r} is invalid: at most {MAX_CONCURRENCY} "
                "runs at once per agent (start more agents, or nodes, for more)"
            )
        _positive(owner, "consult_deadline_s", self.consult_deadline_s)
        self._check_consults(owner)
        _positive(owner, "shutdown", self.shutdown)
        for key in ("max_memory_mb", "hang_after_s"):
            if getattr(self, key) is not None:
                _positive(owner, key, getattr(self, key))
        if isinstance(self.watchdog, Mapping):
            object.__setattr__(self, "watchdog", Watchdog.from_mapping(self.watchdog, f"{owner}: watchdog"))
        if isinstance(self.context, Mapping):
            object.__setattr__(self, "context", ContextLimit.from_mapping(self.context, f"{owner}: context"))
        if self.context is not None and not isinstance(self.context, ContextLimit):
            raise SpecError(f"{owner}: context={self.context!r} is invalid: expected a ContextLimit or None")
        if not isinstance(self.model_options, Mapping):
            raise SpecError(f"{owner}: model_options={self.model_options!r} is invalid: expected a mapping")
        object.__setattr__(self, "model_options", dict(self.model_options))
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise SpecError(f"{owner}: retry={self.retry!r} is invalid: expected a RetryPolicy or None")
        self._check_entry(owner)
        if self.version is not None and (
            isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1
        ):
            raise SpecError(f"{owner}: version={self.version!r} is invalid: expected a whole number >= 1")
        object.__setattr__(self, "approvals", parse_rules(self.approvals, owner))
        if self.isolation == "process" and not all(isinstance(m, str) for m in self.models):
            raise SpecError(f"{owner}: a process-isolated agent needs its model as a 'provider:model' string")
        if isinstance(self.breaker, Mapping):
            object.__setattr__(self, "breaker", BreakerPolicy.from_mapping(self.breaker))
        if self.breaker is not None and not isinstance(self.breaker, BreakerPolicy):
            raise SpecError(f"{owner}: breaker={self.breaker!r} is invalid: expected a BreakerPolicy or None")

    def _check_models(self, owner: str) -> None:
        """One model, or an ordered list of them (the first, then its fallbacks); a one-item list is
        that model."""
        models = self.model
        if isinstance(models, list | tuple):
            if not models:
                raise SpecError(f"{owner}: model=[] is invalid: expected at least one model")
            models = tuple(models)
            object.__setattr__(self, "model", models[0] if len(models) == 1 else models)
        else:
            models = (models,)
        for m in models:
            if isinstance(m, str):
                parse_model_string(m)
            elif not callable(getattr(m, "complete", None)):
                raise SpecError(f"{owner}: model={m!r} is invalid: expected 'provider:model' or a Model")
        names = [m if isinstance(m, str) else getattr(m, "name", repr(m)) for m in models]
        if len(set(names)) != len(names):
            raise SpecError(f"{owner}: model lists a model twice: {names}")

    @property
    def models(self) -> tuple[Any, ...]:
        """The agent's models in order: the first answers, the others are its fallbacks."""
        return self.model if isinstance(self.model, tuple) else (self.model,)

    @property
    def primary_model(self) -> str:
        """The first model's registry name (what the agent is priced and shown by first)."""
        first = self.models[0]
        return first if isinstance(first, str) else str(getattr(first, "name", first))

    def options_for(self, model: str) -> dict[str, Any]:
        """``model_options`` for one of the agent's models: the shared ones, and under the model's
        own name (``{"openai:gpt-4o": {"base_url": …}}``) its own, which win."""
        shared = {k: v for k, v in self.model_options.items() if k not in self.models}
        own = self.model_options.get(model)
        return {**shared, **(dict(own) if isinstance(own, Mapping) else {})}

    def _check_tools(self, owner: str) -> None:
        if isinstance(self.tools, str | bytes) or not isinstance(self.tools, Sequence):
            raise SpecError(f"{owner}: tools={self.tools!r} is invalid: expected a list")
        object.__setattr__(self, "tools", tuple(self.tools))
        names: set[str] = set()
        for t in self.tools:
            name = _tool_name(owner, t)
            if name in names:
                raise SpecError(f"{owner}: tools lists {name!r} twice")
            names.add(name)

    def _check_consults(self, owner: str) -> None:
        if self.consults is None:
            return
        if isinstance(self.consults, str) or not all(isinstance(c, str) and c for c in self.consults):
            raise SpecError(f"{owner}: consults={self.consults!r} is invalid: expected a list of agent names")
        if "consult" not in self.tools:
            raise SpecError(f"{owner}: consults is set but 'consult' is not among its tools")
        object.__setattr__(self, "consults", tuple(self.consults))

    def _check_entry(self, owner: str) -> None:
        if self.entry is None:
            return
        if not isinstance(self.entry, str) or ":" not in self.entry:
            raise SpecError(f"{owner}: entry={self.entry!r} is invalid: expected 'package.module:function'")
        if self.tools:
            raise SpecError(
                f"{owner}: an entry agent's tools belong to its own code (journal them with "
                "beamish.step); leave tools empty"
            )

    @property
    def process_hang_after_s(self) -> float | None:
        """The heartbeat limit of this agent's process (``isolation="process"``): ``hang_after_s``,
        else its watchdog's. A loop blocked by synchronous code is a hang the run's own watchdog, on
        that same loop, cannot see; the node sees it from outside."""
        if self.hang_after_s is not None:
            return self.hang_after_s
        limit = getattr(self.watchdog, "hang_after_s", None)
        return float(limit) if isinstance(limit, int | float) else None

    # -- supervision --------------------------------------------------------------------------------
    def child_spec(self, **overrides: Any) -> ChildSpec:
        """A ``ChildSpec`` for this agent: id = the agent's name, its restart, shutdown and backoff.

        Agents restart with a ``Backoff`` by default: an agent that crashes because its provider is
        down must not come back in a tight loop.
        """
        values: dict[str, Any] = {
            "id": self.name,
            "start": self,
            "restart": self.restart,
            "shutdown": self.shutdown,
            "backoff": self.backoff if self.backoff is not None else Backoff(),
        }
        values.update(overrides)
        return ChildSpec(**values)

    async def start_child(self, node: Node, spec: ChildSpec) -> ActorRef:
        """Start this agent for a supervisor (the runtime's ``ChildStarter`` protocol)."""
        runs = cast("Runs", node.runs)  # the agent layer's own service (registered in beamish.agent)
        return await runs.start(self, spec)

    def process_target(self, store_url: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """``(actor import path, args, kwargs)`` to run this agent in another process."""
        return "beamish.agent._agent:AgentActor", (self.to_json(), store_url), {}

    def process_modules(self) -> list[str]:
        """The modules this agent's process imports (its tools', its model adapter's): worth loading
        into the node's process template once rather than at every start."""
        modules = ["beamish.agent._agent"]
        if self.entry is not None:
            modules += ["beamish.byo._entry", self.entry.partition(":")[0]]
        for model in self.models:
            provider = parse_model_string(model)[0] if isinstance(model, str) else None
            modules += {
                "anthropic": ["anthropic", "beamish.agent.models._anthropic"],
                "openai": ["openai", "beamish.agent.models._openai"],
                "scripted": ["beamish.agent.models._scripted"],
            }.get(provider or "", [])
        for t in self.tools:
            if isinstance(t, Tool):
                modules.append(tool_path(t).partition(":")[0])
            elif not isinstance(t, str):
                modules += [
                    "beamish.agent._mcp_tools",
                    "mcp",
                    "mcp.client.stdio",
                    "mcp.client.streamable_http",
                ]
        return list(dict.fromkeys(modules))

    def process_start(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Refused: the agent needs its node's store, which only ``start_child`` knows."""
        raise SpecError(
            f"AgentSpec {self.name!r}: leave ChildSpec.isolation at its default and set "
            "AgentSpec.isolation instead ('process' is the default); the agent starts its own process"
        )

    # -- JSON ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The spec as JSON, for a process-isolated agent to rebuild (``from_json``)."""
        if not all(isinstance(m, str) for m in self.models):
            raise SpecError(f"AgentSpec {self.name!r}: a Model object cannot cross a process; use a string")
        data: dict[str, Any] = {"v": _VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "tools":
                value = [_tool_to_json(t) for t in value]
            elif f.name == "approvals":
                value = [rule.to_json() for rule in value]
            elif f.name in ("budget", "watchdog", "policy", "backoff", "retry", "context", "breaker"):
                value = _object_to_json(self.name, f.name, value)
            elif f.name == "model" and isinstance(value, tuple):
                value = list(value)
            elif f.name == "hooks" and value is not None and not isinstance(value, str):
                raise SpecError(f"AgentSpec {self.name!r}: hooks must be an import path to cross a process")
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentSpec:
        if data.get("v") != _VERSION:
            raise SpecError(f"AgentSpec JSON has version {data.get('v')!r}; this beamish reads {_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"v"}
        if unknown:
            raise SpecError(f"AgentSpec JSON has unknown keys {sorted(unknown)}")
        values = {k: v for k, v in data.items() if k != "v"}
        values["tools"] = [_tool_from_json(t) for t in values.get("tools", ())]
        for key in ("budget", "watchdog", "policy", "backoff", "retry", "context", "breaker"):
            if key in values or key != "context":  # a spec from before ``context`` keeps its default
                values[key] = _object_from_json(values.get(key))
        return cls(**values)


def _tool_name(owner: str, t: Any) -> str:
    if isinstance(t, Tool):
        return t.name
    if isinstance(t, str):
        if t in BUILTIN_TOOLS:
            return t
        raise SpecError(f"{owner}: tool {t!r} is unknown; built-in tools are {list(BUILTIN_TOOLS)}")
    name = getattr(t, "source_name", None)
    if isinstance(name, str) and callable(getattr(t, "open", None)):
        return f"mcp:{name}"
    raise SpecError(f"{owner}: tool {t!r} is not a @beamish.tool, 'consult' or an McpServer")


def _tool_to_json(t: Any) -> Any:
    if isinstance(t, Tool):
        return {"tool": tool_path(t)}
    if isinstance(t, str):
        return t
    return {"mcp": t.to_json()}


def _tool_from_json(data: Any) -> Any:
    if isinstance(data, str):
        return data
    if "tool" in data:
        found = import_path(data["tool"], "tool")
        if not isinstance(found, Tool):
            raise SpecError(f"tool path {data['tool']!r} does not name a @beamish.tool")
        return found

    return McpServer.from_json(data["mcp"])


def _object_to_json(agent: str, key: str, value: Any) -> Any:
    """A budget/watchdog/backoff as ``{"type": path, "data": ...}`` (frozen dataclasses of floats)."""
    if value is None:
        return None
    cls = type(value)
    data = value.to_json() if callable(getattr(value, "to_json", None)) else None
    if data is None:
        try:
            data = {f.name: getattr(value, f.name) for f in fields(value)}
        except TypeError:
            raise SpecError(f"AgentSpec {agent!r}: {key}={value!r} cannot be sent to a process") from None
    return {"type": f"{cls.__module__}:{cls.__qualname__}", "data": data}


def _object_from_json(data: Any) -> Any:
    if data is None:
        return None
    cls = import_path(data["type"], "spec field type")
    payload = data["data"]
    maker = getattr(cls, "from_mapping", None) or getattr(cls, "from_json", None)
    if callable(maker):
        return maker(payload)
    return cls(**payload)
