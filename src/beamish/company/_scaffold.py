"""``beamish init``: a company to start from, on a model that answers at once.

Two templates: ``minimal`` (one agent, one tool, one schedule) and ``solo`` (the eight-agent company
of the demo). The default model, ``scripted``, plays a file of responses, so ``beamish run`` then
``beamish submit … --wait`` answers offline with no key; ``anthropic``, ``openai`` and ``local`` (an
OpenAI-compatible server) swap in a real model and, where the price catalogue cannot know it, a
price. Replacing a config (``force``) replaces ``beamish.toml`` only: tools and scripts the user may
have edited are never overwritten.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from beamish._exceptions import ConfigError
from beamish.company._examples import solo_company_dir

Template = Literal["minimal", "solo"]
ModelChoice = Literal["scripted", "anthropic", "openai", "local"]
TEMPLATES: tuple[Template, ...] = ("minimal", "solo")
MODELS: tuple[ModelChoice, ...] = ("scripted", "anthropic", "openai", "local")

#: The real model each choice puts in the config, and the variable its provider needs.
_REAL = {
    "anthropic": ("anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    "openai": ("openai:gpt-4o-mini", "OPENAI_API_KEY"),
    "local": ("openai:llama3.1", "OPENAI_BASE_URL"),
}
_FREE = "price = { input_per_mtok = 0, output_per_mtok = 0 }"
_PRICE_NOTE = {
    "scripted": "  # the scripted model costs nothing",
    "local": "  # a local model: no catalogue price, so one is stated",
}

MINIMAL_AGENT = "assistant"
MINIMAL_TASK = "What time is it?"

_MINIMAL_TOML = '''\
# {config}: one agent, one tool, one schedule ({made}).
#
#   beamish check -c {config}      # everything that would stop it, one line each
#   beamish run -c {config}        # run it until Ctrl-C
#   beamish submit {agent} "{task}" --wait -c {config}
#
# Relative paths resolve beside this file. Every key: docs/reference/config.md.

[company]
name = "{name}"

[store]
url = "sqlite:///beamish.db"

[memory]
enabled = false

[agents.{agent}]
instructions = """You are a helpful assistant. Call the `now` tool whenever the time matters."""
model = "{model}"
{price}tools = ["my_tools:now"]
budget = {{ per_run_usd = 0.05, per_day_usd = 1.00 }}
schedules = [
  {{ id = "{agent}-morning", cron = "0 9 * * *", tz = "UTC", task = "Good morning: what time is it?" }},
]
'''

_MINIMAL_TOOLS = '''\
"""The assistant's tools: plain functions, each one a step in the journal when the agent calls it."""

from __future__ import annotations

from datetime import UTC, datetime

import beamish


@beamish.tool
def now() -> str:
    """The current date and time in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
'''

_MINIMAL_SCRIPT = {
    "turns": [
        {"tool_calls": [{"name": "now", "arguments": {}}]},
        {"text": "It is {last_tool}. You asked: {task}"},
    ]
}


@dataclass
class Scaffold:
    """What ``init`` did: the config it wrote and the files it wrote or kept."""

    config: Path
    template: Template
    model: ModelChoice
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        """The environment variable the chosen model needs, or None (scripted)."""
        return _REAL[self.model][1] if self.model in _REAL else None

    @property
    def first_agent(self) -> str:
        return MINIMAL_AGENT if self.template == "minimal" else "ceo"


def scaffold(
    directory: Path, template: Template, model: ModelChoice, *, force: bool = False, shown: str | None = None
) -> Scaffold:
    """Write the template into ``directory``; :class:`ConfigError` (one line) when it cannot.

    ``shown`` is how the config is named in its header (the path the user will type).
    """
    target = directory.expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder: name a folder for the company")
    config = target / "beamish.toml"
    if config.exists() and not force:
        raise ConfigError(
            f"{config} exists; pass --force to replace it (only beamish.toml: tools and scripts are kept)"
        )
    made = Scaffold(config, template, model)
    target.mkdir(parents=True, exist_ok=True)
    name = shown or str(config)
    if template == "minimal":
        _write(made, target / "my_tools.py", _MINIMAL_TOOLS)
        _write(
            made, target / "scripts" / f"{MINIMAL_AGENT}.json", json.dumps(_MINIMAL_SCRIPT, indent=1) + "\n"
        )
        text = _minimal_toml(name, target.name or "company", model)
    else:
        text = _solo(made, target, name, model)
    config.write_text(text, encoding="utf-8")
    made.written.insert(0, config)
    return made


def _write(made: Scaffold, path: Path, text: str) -> None:
    """Write ``path`` unless it exists: a user's edited tool or script is theirs."""
    if path.exists():
        made.kept.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    made.written.append(path)


def _made(template: Template, model: ModelChoice) -> str:
    return f"made by `beamish init --template {template} --model {model}`"


def _model_line(model: ModelChoice, script: str) -> tuple[str, str]:
    """The ``model = …`` value and the ``price = …`` line (empty when the catalogue prices it)."""
    if model == "scripted":
        return f"scripted:{script}", _FREE + _PRICE_NOTE["scripted"] + "\n"
    name, _key = _REAL[model]
    return name, (_FREE + _PRICE_NOTE["local"] + "\n") if model == "local" else ""


def _minimal_toml(shown: str, name: str, model: ModelChoice) -> str:
    value, price = _model_line(model, f"scripts/{MINIMAL_AGENT}.json")
    slug = re.sub(r"[^A-Za-z0-9_ -]", "", name) or "company"
    return _MINIMAL_TOML.format(
        config=shown,
        made=_made("minimal", model),
        agent=MINIMAL_AGENT,
        task=MINIMAL_TASK,
        name=slug,
        model=value,
        price=price,
    )


_AGENT_HEADER = re.compile(r"^\[agents\.([a-z][a-z0-9_-]*)\]\s*$")
_MODEL_LINE = re.compile(r'^model = "[^"]*"\s*$')


def _local(relative: Path) -> bool:
    """What a run of the example leaves beside it (its store, memory, outbox): never copied."""
    return relative.parts[0] in ("state", "outbox") or "__pycache__" in relative.parts


def _solo(made: Scaffold, target: Path, shown: str, model: ModelChoice) -> str:
    """Copy the solo company's tools and scripts (keeping any that exist) and return its config,
    with every agent's model set to the chosen one."""
    source = solo_company_dir()
    for item in sorted(source.rglob("*")):
        relative = item.relative_to(source)
        if item.is_dir() or item.name.startswith(".") or item.name == "beamish.toml" or _local(relative):
            continue
        dest = target / relative
        if dest.exists():
            made.kept.append(dest)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item, dest)
        made.written.append(dest)
    (target / "state").mkdir(exist_ok=True)  # the store's folder: a missing one is refused, not made
    lines = [f"# {shown}: {_made('solo', model)}.", "#"]
    agent: str | None = None
    for line in (source / "beamish.toml").read_text(encoding="utf-8").splitlines():
        header = _AGENT_HEADER.match(line)
        if header is not None:
            agent = header.group(1)
        elif line.startswith("["):
            agent = None
        if agent is not None and _MODEL_LINE.match(line) and model != "anthropic":
            value, price = _model_line(model, f"scripts/{agent}.json")
            lines.append(f'model = "{value}"')
            if price:
                lines.append(price.rstrip("\n"))
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"
