"""Load ``beamish.toml``: parse, validate, resolve paths and tools, check cross-references.

Everything that can be known from the file is checked here, before anything starts, so a bad
config starts nothing. Every problem is reported at once, each line naming the file, the key path
and what was expected.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from beamish._exceptions import ConfigError, ScheduleError, SpecError
from beamish._redact import redact_text
from beamish.agent._deadline import parse_deadline
from beamish.agent._policy import Policy
from beamish.agent._tools import Tool
from beamish.company._errors import describe
from beamish.company._schema import AgentSection, ConfigFile, PriceSection, ScheduleSection
from beamish.schedule._cron import Schedule
from beamish.schedule._fields import cron_problems

#: Tools every agent may name without an import path.
BUILTIN_TOOLS = frozenset({"memory", "consult", "ask_human"})
MODEL_PROVIDERS = ("anthropic", "openai", "scripted")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class AgentConfig:
    """One agent, resolved: its tools imported, its scripted model file made absolute."""

    name: str
    section: AgentSection
    model: str
    tools: tuple[Any, ...]
    group: str | None
    #: The models a step goes to, in order, when ``model`` is down.
    fallbacks: tuple[str, ...] = ()
    #: The ``prices`` table by resolved model name (a script's path made absolute, as ``model``'s).
    prices: Mapping[str, PriceSection] = field(default_factory=dict, hash=False)

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model, *self.fallbacks)


@dataclass(frozen=True)
class CompanyConfig:
    """A validated company: what :func:`load_config` returns and the tree builder consumes."""

    path: Path
    file: ConfigFile
    store_url: str
    memory_file: Path
    agents: dict[str, AgentConfig] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def group_of(self, agent: str) -> str | None:
        return self.agents[agent].group


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> CompanyConfig:
    """Read and validate a company config; raise :class:`ConfigError` listing every problem.

    ``overrides`` replaces top-level tables after parsing (the demo points the store and memory
    file into a temporary folder this way).
    """
    source = Path(path).expanduser().resolve()
    shown = str(path)
    try:
        raw_text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read the file ({exc})") from exc
    try:
        data = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: invalid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{shown}: invalid TOML: arrays or tables nested too deeply") from exc
    return load_config_data(data, source, shown=shown, overrides=overrides)


def load_config_data(
    data: dict[str, Any],
    source: Path,
    *,
    shown: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CompanyConfig:
    """Validate already-parsed TOML ``data`` as if read from ``source`` (paths resolve beside it)."""
    config, problems = validate_config_data(data, source, overrides=overrides)
    if config is None or problems:
        _fail(shown or str(source), problems)
    return config


def validate_config_data(
    data: dict[str, Any], source: Path, *, overrides: Mapping[str, Any] | None = None
) -> tuple[CompanyConfig | None, list[tuple[str, str]]]:
    """The config and every ``(key path, problem)`` found; the config is None when the file does not
    even have the right shape (``beamish check`` goes on to the checks that need no shape)."""
    if overrides:
        data = {**data}
        for key, table in overrides.items():
            data[key] = {**data.get(key, {}), **table}
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        return None, describe(exc, ConfigFile)
    problems: list[tuple[str, str]] = []
    base = source.parent
    store_url = _store_url(file.store.url, base, problems)
    memory_file = _path(file.memory.file, base)
    groups = _group_membership(file, problems)
    agents: dict[str, AgentConfig] = {}
    for name, section in file.agents.items():
        _check_agent(name, section, file, base, problems)
        listed = [section.model] if isinstance(section.model, str) else section.model
        keys = [
            f"agents.{name}.model" + ("" if listed is not section.model else f"[{i}]")
            for i in range(len(listed))
        ]
        models = [_model(key, m, base, problems) for key, m in zip(keys, listed, strict=True)]
        if len(set(models)) != len(models):
            problems.append((f"agents.{name}.model", f"lists a model twice: {listed}"))
        tools = tuple(_tool(name, i, t, file, base, problems) for i, t in enumerate(section.tools))
        prices = _prices(name, section, listed, models, base, problems)
        agents[name] = AgentConfig(
            name, section, models[0], tools, groups.get(name), tuple(models[1:]), prices
        )
    for i, rule in enumerate(file.approvals):
        if rule.agent != "*" and rule.agent not in file.agents:
            known = ", ".join(file.agents)
            problems.append(
                (f"approvals[{i}].agent", f"unknown agent {rule.agent!r} (agents: {known}, or '*')")
            )
        if rule.on_expiry == "escalate" and not rule.escalate_to:
            problems.append((f"approvals[{i}].escalate_to", "on_expiry = 'escalate' needs who decides next"))
    _check_alerts(file, problems)
    _check_zone("company.timezone", file.company.timezone, problems)
    if file.budget.tz is not None:
        _check_zone("budget.tz", file.budget.tz, problems)
    if file.telemetry.otel and importlib.util.find_spec("opentelemetry.sdk") is None:
        problems.append(("telemetry.otel", "needs the 'otel' extra: pip install 'beamish[otel]'"))
    if file.telemetry.sentry_dsn and importlib.util.find_spec("sentry_sdk") is None:
        problems.append(("telemetry.sentry_dsn", "needs the 'sentry' extra: pip install 'beamish[sentry]'"))
    return CompanyConfig(source, file, store_url, memory_file, agents), problems


def _check_alerts(file: ConfigFile, problems: list[tuple[str, str]]) -> None:
    names: set[str] = set()
    for i, sink in enumerate(file.alerts):
        where = f"alerts[{i}]"
        if sink.name in names:
            problems.append((f"{where}.name", f"another sink is named {sink.name!r}"))
        names.add(sink.name)
        if sink.type in ("webhook", "slack") and not sink.url:
            problems.append((f"{where}.url", f"a {sink.type} sink needs url = 'https://…'"))
        if sink.type == "email" and not (sink.host and sink.sender and sink.to):
            problems.append((where, "an email sink needs host, sender and to = ['someone@example.com']"))


def _fail(shown: str, problems: list[tuple[str, str]]) -> NoReturn:
    lines = [f"{shown}: {where}: {what}" for where, what in problems]
    raise ConfigError("\n".join(lines))


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _store_url(url: str, base: Path, problems: list[tuple[str, str]]) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite:///" + str(_path(url.removeprefix("sqlite:///"), base))
    if url.startswith(("postgresql://", "postgres://")):
        return url
    problems.append(("store.url", f"expected sqlite:///PATH or postgresql://…, got {redact_text(url)!r}"))
    return url


def _group_membership(file: ConfigFile, problems: list[tuple[str, str]]) -> dict[str, str]:
    member: dict[str, str] = {}
    for group, section in file.tree.groups.items():
        if group in file.agents:
            problems.append((f"tree.groups.{group}", "a group cannot have the name of an agent"))
        if not section.agents:
            problems.append((f"tree.groups.{group}.agents", "expected at least one agent"))
        for i, agent in enumerate(section.agents):
            where = f"tree.groups.{group}.agents[{i}]"
            if agent not in file.agents:
                problems.append((where, f"unknown agent {agent!r} (agents: {', '.join(file.agents)})"))
            elif agent in member:
                problems.append((where, f"agent {agent!r} is already in group {member[agent]!r}"))
            else:
                member[agent] = group
    return member


def _check_agent(
    name: str, section: AgentSection, file: ConfigFile, base: Path, problems: list[tuple[str, str]]
) -> None:
    where = f"agents.{name}"
    if not _NAME.match(name):
        problems.append((where, "expected a lowercase name (a-z, 0-9, _ or -, starting with a letter)"))
    if section.entry is not None:
        _check_entry(name, section, base, problems)
    elif section.instructions is None:
        problems.append(
            (f"{where}.instructions", "required key is missing (or set entry = 'module:function')")
        )
    elif not section.instructions.strip():
        problems.append((f"{where}.instructions", "expected non-empty instructions"))
    if section.budget.tz is not None:
        _check_zone(f"{where}.budget.tz", section.budget.tz, problems)
    try:
        Policy(**section.policy.model_dump())
    except SpecError as exc:
        problems.append((f"{where}.policy", str(exc)))
    seen: set[str] = set()
    for i, sched in enumerate(section.schedules):
        at = f"{where}.schedules[{i}]"
        found = cron_problems(sched.cron)  # field by field: "minute 61 is out of range 0-59"
        if not found:
            try:  # the scheduler's own parser: what passes here is what it will run
                Schedule(sched.cron)
            except ScheduleError as exc:
                found = [str(exc).removeprefix("cron: ")]
        problems.extend((f"{at}.cron", problem) for problem in found)
        try:
            parse_deadline(sched.deadline, "deadline")
        except SpecError as exc:
            problems.append(
                (
                    f"{at}.deadline",
                    str(exc).removeprefix(f"deadline={sched.deadline!r} is invalid: ")
                    + f", got {sched.deadline!r}",
                )
            )
        _check_zone(f"{at}.tz", sched.tz, problems)
        sid = schedule_id(name, i, sched)
        if sid in seen:
            problems.append((f"{at}.id", f"duplicate schedule id {sid!r}"))
        seen.add(sid)
    if "consult" in section.tools and len(file.agents) < 2:
        problems.append((f"{where}.tools", "'consult' needs at least one other agent"))


def _check_entry(agent: str, section: AgentSection, base: Path, problems: list[tuple[str, str]]) -> None:
    """An ``entry`` agent runs its own code: no beamish instructions or tools, an importable async
    function ``(task, ctx) -> answer``."""
    where = f"agents.{agent}"
    if section.instructions is not None:
        problems.append(
            (f"{where}.entry", "an entry agent takes no instructions (its code holds them); remove one")
        )
    if section.tools:
        problems.append(
            (f"{where}.entry", "an entry agent's tools belong to its own code; leave tools empty")
        )
    ref = section.entry or ""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        problems.append((f"{where}.entry", f"expected an import path 'module:function', got {ref!r}"))
        return
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        problems.append(
            (f"{where}.entry", f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}")
        )
        return
    fn = getattr(module, attr, None)
    if fn is None:
        problems.append((f"{where}.entry", f"module {module_name!r} has no attribute {attr!r}"))
    elif not inspect.iscoroutinefunction(fn):
        problems.append((f"{where}.entry", f"{ref!r} is not an async function (task, ctx) -> answer"))


def schedule_id(agent: str, index: int, section: ScheduleSection) -> str:
    """A schedule's id: its own ``id``, else ``AGENT-INDEX``."""
    return section.id or f"{agent}-{index}"


def schedule_of(section: ScheduleSection) -> Schedule:
    """The scheduler's :class:`~beamish.schedule.Schedule` for a validated config section."""
    return Schedule(
        section.cron,
        tz=section.tz,
        misfire=section.misfire,
        grace_s=section.grace_s,
        jitter_s=section.jitter_s,
        deadline_s=parse_deadline(section.deadline),
    )


def schedule_entries(config: CompanyConfig, agent: str | None = None) -> list[tuple[str, Schedule, str, str]]:
    """``(schedule_id, Schedule, agent, task)`` for every schedule in the config (or one agent's):
    what the scheduler runs and what status and the dashboard show as the next fire."""
    return [
        (schedule_id(name, i, s), schedule_of(s), name, s.task)
        for name, spec in config.agents.items()
        if agent is None or name == agent
        for i, s in enumerate(spec.section.schedules)
    ]


def _check_zone(where: str, zone: str, problems: list[tuple[str, str]]) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((where, f"expected an IANA time zone such as 'UTC' or 'Europe/Lisbon', got {zone!r}"))


def _prices(
    name: str,
    section: AgentSection,
    listed: list[str],
    models: list[str],
    base: Path,
    problems: list[tuple[str, str]],
) -> dict[str, PriceSection]:
    """The agent's ``prices`` table by resolved model name. A key must name one of its models (a typo
    must not leave a fallback unpriced), except for an ``entry`` agent, whose code may name others."""
    out: dict[str, PriceSection] = {}
    for key, price in section.prices.items():
        where = f'agents.{name}.prices."{key}"'
        if key in listed:
            model = models[listed.index(key)]
        elif section.entry is None:
            problems.append((where, f"prices a model the agent does not name (its models: {listed})"))
            continue
        else:
            model = _model(where, key, base, problems)
        if model == models[0] and section.price is not None:
            problems.append((where, "the first model is priced twice (price and prices): keep one"))
        out[model] = price
    return out


def _model(where: str, model: str, base: Path, problems: list[tuple[str, str]]) -> str:
    """``model`` checked and resolved (a script's path beside the config); ``where`` names it: the
    key, or the key and its place in a list of fallbacks."""
    provider, sep, rest = model.partition(":")
    if not sep or provider not in MODEL_PROVIDERS or not rest:
        expected = "expected 'anthropic:MODEL', 'openai:MODEL' or 'scripted:FILE'"
        problems.append((where, f"{expected}, got {model!r}"))
        return model
    if provider == "scripted":
        script = _path(rest, base)
        if not script.is_file():
            problems.append((where, f"scripted model file not found: {script}"))
        return f"scripted:{script}"
    return model


def _tool(
    agent: str, index: int, ref: str, file: ConfigFile, base: Path, problems: list[tuple[str, str]]
) -> Any:
    where = f"agents.{agent}.tools[{index}]"
    if ref in BUILTIN_TOOLS:
        if ref == "memory" and not file.memory.enabled:
            problems.append((where, "'memory' needs [memory] enabled = true"))
        return ref
    module_name, sep, attr = ref.partition(":")
    if not sep:
        module_name, _, attr = ref.rpartition(".")
    if not module_name or not attr:
        expected = "expected 'memory', 'consult', 'ask_human' or an import path 'module:function'"
        problems.append((where, f"{expected}, got {ref!r}"))
        return ref
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        problems.append((where, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"))
        return ref
    obj = getattr(module, attr, None)
    if obj is None:
        problems.append((where, f"module {module_name!r} has no attribute {attr!r}"))
        return ref
    if not callable(obj):
        problems.append((where, f"{ref!r} is not a tool (not callable)"))
    elif not isinstance(obj, Tool):
        problems.append((where, f"{ref!r} is not a beamish tool (decorate it with @beamish.tool)"))
    return obj
