"""Config → supervision tree: root → memory server, one supervisor per group, loose agents, scheduler.

The shared memory server starts first so agents find it running, and stops last; the scheduler
starts after every agent (it submits to them) and stops first. Each group is a supervisor with its
own strategy, e.g. finance as ``rest_for_one``: when the CFO restarts, the accountant (started after
it) restarts too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beamish.agent._breaker import BreakerPolicy
from beamish.agent._budget import LIMITS, Budget
from beamish.agent._context import ContextLimit
from beamish.agent._policy import Policy
from beamish.agent._pricing import Price
from beamish.agent._ratelimit import RateLimit
from beamish.agent._spec import AgentSpec
from beamish.agent._watchdog import Watchdog
from beamish.company._config import AgentConfig, CompanyConfig
from beamish.runtime import Backoff, ChildSpec, SupervisorSpec

if TYPE_CHECKING:
    from beamish._clock import Clock
    from beamish.runtime import ChildSpec, SupervisorSpec


@dataclass
class CompanyParts:
    """What a company adds around its agents; the demo and ``beamish run`` fill it in.

    ``services`` are child specs started before any agent. ``builtin_tools`` map a tool name the
    config may use (``"memory"``) to what the agent gets (an MCP server spec). The hooks run at start
    and stop, with the :class:`~beamish.company.Company`.
    """

    services: list[ChildSpec] = field(default_factory=list)
    #: Started after every agent (and stopped before them): e.g. the scheduler, which submits to agents.
    last: list[ChildSpec] = field(default_factory=list)
    builtin_tools: dict[str, Callable[[AgentConfig], Any]] = field(default_factory=dict)
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    on_start: list[Callable[[Any], Any]] = field(default_factory=list)
    on_started: list[Callable[[Any], Any]] = field(default_factory=list)
    on_stop: list[Callable[[Any], Any]] = field(default_factory=list)
    #: The clock the scheduler fires by (the demo's runs fast); status shows next fires by it too.
    schedule_clock: Clock | None = None

    def service_names(self) -> tuple[str, ...]:
        return tuple(str(s.id) for s in (*self.services, *self.last))

    async def before_start(self, company: Any) -> None:
        for hook in self.on_start:
            await _maybe_await(hook(company))

    async def after_start(self, company: Any) -> None:
        for hook in self.on_started:
            await _maybe_await(hook(company))

    async def before_stop(self, company: Any) -> None:
        for hook in reversed(self.on_stop):
            await _maybe_await(hook(company))


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


def agent_spec(agent: AgentConfig, config: CompanyConfig, parts: CompanyParts) -> Any:
    """The :class:`~beamish.AgentSpec` for one configured agent."""
    section = agent.section
    tools: list[Any] = []
    for t in agent.tools:
        if isinstance(t, str) and t in parts.builtin_tools:
            given = parts.builtin_tools[t](agent)
            tools.extend(given if isinstance(given, tuple | list) else [given])
        else:
            tools.append(t)
    wd = section.watchdog
    options: dict[str, Any] = {
        "name": agent.name,
        "instructions": section.instructions or "",
        "entry": section.entry,
        "model": list(agent.models) if agent.fallbacks else agent.model,
        "tools": tools,
        "budget": agent_budget(agent, config),
        "watchdog": Watchdog(**wd.model_dump()),
        "isolation": section.isolation,
        "restart": section.restart,
        "max_tokens": section.max_tokens,
        "max_memory_mb": section.max_memory_mb,
        "concurrency": section.concurrency,
        "hang_after_s": wd.hang_after_s if section.isolation == "process" else None,
    }
    if config.file.telemetry.capture_content:
        options["capture_content"] = True  # prompts, replies and tool arguments on the spans (redacted)
    options["policy"] = Policy(**section.policy.model_dump())
    options["context"] = ContextLimit(**section.context.model_dump())
    rules = [r.model_dump(exclude={"agent"}) for r in config.file.approvals if r.agent in (agent.name, "*")]
    if rules:
        options["approvals"] = rules
    if section.backoff is not None:
        options["backoff"] = Backoff(**section.backoff.model_dump())
    if section.breaker is not None:
        options["breaker"] = BreakerPolicy(**section.breaker.model_dump())
    options.update(parts.agent_overrides.get(agent.name, {}))
    return AgentSpec(**options)


def agent_budget(agent: AgentConfig, config: CompanyConfig) -> Any:
    """The :class:`~beamish.Budget` of one configured agent: its caps, in the company's time zone
    unless the config names one, with its configured prices (``price``, then the ``prices`` table)."""
    section = agent.section
    fields = section.budget.model_dump(exclude_none=True)
    fields.setdefault("tz", config.file.budget.tz or config.file.company.timezone)
    prices: dict[str, Price] = {}
    if section.price is not None:  # the first model's price; a scripted fallback costs the same
        price = Price(**section.price.model_dump())
        scripted = [m for m in agent.fallbacks if m.startswith("scripted:")]
        prices = {model: price for model in (agent.model, *scripted)}
    prices.update({model: Price(**p.model_dump()) for model, p in agent.prices.items()})
    if prices:
        fields["prices"] = prices
    return Budget(**fields)


def config_caps(config: CompanyConfig) -> tuple[dict[str, Any], Any]:
    """Every agent's :class:`~beamish.Budget` by name, and the company's (or None)."""
    return {name: agent_budget(a, config) for name, a in config.agents.items()}, company_budget(config)


def company_budget(config: CompanyConfig) -> Any:
    """The company-wide caps of the config's ``[budget]`` as a :class:`~beamish.Budget`, or None when
    it sets no cap. The config is their source: a company started without caps removes stored ones."""
    section = config.file.budget
    fields = section.model_dump(exclude_none=True)
    if not any(limit in fields for limit in LIMITS):
        return None
    fields["tz"] = section.tz or config.file.company.timezone
    return Budget(**fields)


def rate_limits(config: CompanyConfig) -> dict[str, RateLimit]:
    """The config's ``[limits]``, each a :class:`~beamish.agent._ratelimit.RateLimit`, by key."""
    return {key: RateLimit(**section.model_dump()) for key, section in config.file.limits.items()}


def build_tree(config: CompanyConfig, parts: CompanyParts) -> SupervisorSpec:
    """The root :class:`~beamish.SupervisorSpec` of the company."""

    def child(name: str) -> ChildSpec:
        spec = agent_spec(config.agents[name], config, parts)
        return spec.child_spec()  # type: ignore[no-any-return]

    tree = config.file.tree
    children: list[ChildSpec] = list(parts.services)
    placed: set[str] = set()
    for group, section in tree.groups.items():
        members = [child(a) for a in section.agents]
        placed.update(section.agents)
        spec = SupervisorSpec(
            members, strategy=section.strategy, intensity=section.intensity, period=section.period
        )
        children.append(ChildSpec(group, spec))
    children.extend(child(a) for a in config.agents if a not in placed)
    children.extend(parts.last)
    return SupervisorSpec(children, strategy=tree.strategy, intensity=tree.intensity, period=tree.period)
