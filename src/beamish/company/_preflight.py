"""``beamish check``: every reason a company would not run, found before it runs, one line each.

Without it a missing SDK extra, a model with no price or an unset key shows up only when every run
crashes, one agent at a time. The check reads the config (all of the loader's problems), then asks
what the loader cannot: is each model's SDK importable, is each model priced, is each key set, does
the store's folder exist and is the store at a schema this beamish knows, does each MCP tool server
start and list its tools. Each problem carries a fix in the file's own words (a TOML line, a shell
command). ``run``, ``demo`` and ``reload`` run the same check (without starting servers) first.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamish._exceptions import BeamishError, CorruptStore, PricingError, StoreVersionError
from beamish._redact import redact_text
from beamish.agent._pricing import PriceBook
from beamish.company._config import CompanyConfig, validate_config_data
from beamish.company._credentials import missing_key
from beamish.company._probe import probe_memory_server
from beamish.journal._migrations import available, check_versions
from beamish.journal._sqlite import inspect_file
from beamish.schedule._fields import cron_problems

#: The SDK module each provider needs, and the extra that installs it.
_SDKS = {"anthropic": ("anthropic", "anthropic"), "openai": ("openai", "openai")}
_PRICE = "{ input_per_mtok = …, output_per_mtok = … }"
PRICE_FIX = f"price = {_PRICE}"


@dataclass(frozen=True)
class Problem:
    """One reason the company would not run: where (a key path), what, and how to fix it."""

    where: str
    what: str
    fix: str = ""

    def line(self, shown: str) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{shown}: {self.where}: {self.what}{fix}"

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "problem": self.what, "fix": self.fix}


def check_file(
    path: Path, environ: Mapping[str, str], *, servers: bool = True
) -> tuple[CompanyConfig | None, list[Problem]]:
    """The config at ``path`` (None when it does not load) and every problem found in it.

    ``servers`` also starts each MCP tool server once and lists its tools (a second or two).
    """
    source = path.expanduser().resolve()
    try:
        data = tomllib.loads(source.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None, [Problem("(file)", "no such file", "name the company's beamish.toml, or `beamish init`")]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        return None, [Problem("(file)", f"cannot read it as TOML ({exc})")]
    config, found = validate_config_data(data, source)
    problems = [Problem(where, what, _loader_fix(where, what)) for where, what in found]
    if config is None:  # no shape: the loader stopped early, so its cron checks did not run
        problems.extend(_cron_problems(data))
    problems.extend(check_data(data, source.parent, environ, servers=servers and config is not None))
    return (config if not found else None), problems


def check_loaded(
    config: CompanyConfig, environ: Mapping[str, str], *, servers: bool = False
) -> list[Problem]:
    """The checks past the loader's, for a config already loaded (the demo builds its own)."""
    data = config.file.model_dump(exclude_none=True)
    data["store"] = {"url": config.store_url}
    return check_data(data, config.base_dir, environ, servers=servers)


def check_data(
    data: dict[str, Any], base: Path, environ: Mapping[str, str], *, servers: bool
) -> list[Problem]:
    """Extras, prices and keys per agent, the store, and (``servers``) the MCP tool servers."""
    problems: list[Problem] = []
    agents = data.get("agents")
    for name, agent in (agents if isinstance(agents, dict) else {}).items():
        model = agent.get("model") if isinstance(agent, dict) else None
        if isinstance(model, str) or (isinstance(model, list) and all(isinstance(m, str) for m in model)):
            problems.extend(_agent_problems(str(name), agent, environ))
    problems.extend(_store_problems(data.get("store"), base))
    if servers:
        problems.extend(_server_problems(data, base))
    return problems


def _agent_problems(name: str, agent: dict[str, Any], environ: Mapping[str, str]) -> list[Problem]:
    listed = agent["model"] if isinstance(agent["model"], list) else [agent["model"]]
    problems: list[Problem] = []
    for i, model in enumerate(listed):  # the fallbacks too: one that cannot be called is no fallback
        problems += _model_problems(name, agent, str(model), environ, i)
    return problems


def _model_problems(
    name: str, agent: dict[str, Any], model: str, environ: Mapping[str, str], index: int
) -> list[Problem]:
    """What stops ``model``, the agent's ``index``-th (0: its first, priced by its ``price``; any, by
    its ``prices`` table)."""
    priced = index == 0 or model.startswith("scripted:")  # the agent's price covers its scripts
    table = agent.get("prices")
    in_table = isinstance(table, dict) and model in table
    where = f"agents.{name}"
    provider = model.partition(":")[0]
    problems: list[Problem] = []
    if provider in _SDKS:
        module, extra = _SDKS[provider]
        if importlib.util.find_spec(module) is None:
            problems.append(
                Problem(
                    f"{where}.model",
                    f"{model!r} needs the {module!r} SDK, which is not installed",
                    f"pip install 'beamish[{extra}]'",
                )
            )
    covered = in_table or (priced and agent.get("price") is not None)
    unpriced = None if covered else _unpriced(model)
    if unpriced is not None and priced:
        problems.append(Problem(f"{where}.price", unpriced, f"add to [{where}]: {PRICE_FIX}"))
    elif unpriced is not None:  # a fallback: the agent's one price is its first model's
        problems.append(
            Problem(
                f"{where}.model[{index}]",
                f"the fallback {model!r} has no price ([{where}] price prices only the first model)",
                f"add to [{where}]: prices = {{ {json.dumps(model)} = {_PRICE} }}",
            )
        )
    key = None if agent.get("entry") else missing_key(model, environ)
    if key is not None:
        fix = f"export {key}=…"
        if key == "OPENAI_API_KEY":
            fix += " (or, for a local OpenAI-compatible server, export OPENAI_BASE_URL=http://127.0.0.1:11434/v1)"
        problems.append(Problem(f"{where}.model", f"{model!r} needs {key}, which is not set", fix))
    return problems


def _unpriced(model: str) -> str | None:
    """Why ``model`` has no price (None when the catalogue knows it)."""
    if model.startswith("scripted:"):
        return "the scripted model has no price (say what it costs, zero included)"
    if model.partition(":")[0] not in _SDKS:
        return None  # an unknown provider: the loader has said so

    try:
        PriceBook().rates(model)
    except PricingError:
        return f"no price is known for {model!r}"
    return None


def _cron_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    agents = data.get("agents")
    for name, agent in (agents if isinstance(agents, dict) else {}).items():
        schedules = agent.get("schedules") if isinstance(agent, dict) else None
        for i, sched in enumerate(schedules if isinstance(schedules, list) else []):
            cron = sched.get("cron") if isinstance(sched, dict) else None
            if isinstance(cron, str):
                where = f"agents.{name}.schedules[{i}].cron"
                problems.extend(Problem(where, p, _loader_fix(where, p)) for p in cron_problems(cron))
    return problems


def _store_problems(section: Any, base: Path) -> list[Problem]:
    url = section.get("url") if isinstance(section, dict) else None
    url = url if isinstance(url, str) else "sqlite:///beamish.db"
    if url.startswith("sqlite:///"):
        return _sqlite_problems(url, base)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_problems(url)
    return []  # the loader has named the bad URL


def _sqlite_problems(url: str, base: Path) -> list[Problem]:
    raw = url.removeprefix("sqlite:///").split("?", 1)[0]
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.parent.is_dir():
        return [
            Problem(
                "store.url",
                f"the folder {path.parent} does not exist (a store is never created in a missing folder)",
                f'mkdir -p {path.parent}, or [store] url = "sqlite:///beamish.db"',
            )
        ]
    try:
        recorded = inspect_file(str(path))
        if recorded is not None:
            check_versions(str(path), recorded, available("sqlite"))
    except StoreVersionError as exc:
        return [Problem("store.url", str(exc), "upgrade beamish (pip install -U beamish)")]
    except (CorruptStore, BeamishError) as exc:
        return [Problem("store.url", str(exc), "point [store] url at a beamish journal or a new file")]
    return []


def _postgres_problems(url: str) -> list[Problem]:
    """Connect (5 s at most) and compare the recorded schema versions; nothing is written."""
    if importlib.util.find_spec("psycopg") is None:
        return [Problem("store.url", "a PostgreSQL store needs psycopg", "pip install 'beamish[postgres]'")]
    import psycopg

    shown = redact_text(url)
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            present = conn.execute("SELECT to_regclass('beamish_meta') IS NOT NULL").fetchone()
            if present and present[0]:
                rows = conn.execute("SELECT component, version FROM beamish_meta").fetchall()
                check_versions(shown, {str(c): int(v) for c, v in rows}, available("postgresql"))
    except StoreVersionError as exc:
        return [Problem("store.url", str(exc), "upgrade beamish (pip install -U beamish)")]
    except psycopg.Error as exc:
        detail = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return [
            Problem("store.url", f"cannot reach {shown}: {detail}", "start PostgreSQL or fix [store] url")
        ]
    return []


def _server_problems(data: dict[str, Any], base: Path) -> list[Problem]:
    memory = data.get("memory") if isinstance(data.get("memory"), dict) else {}
    assert isinstance(memory, dict)
    agents = data.get("agents") if isinstance(data.get("agents"), dict) else {}
    assert isinstance(agents, dict)
    wanted = any(isinstance(a, dict) and "memory" in (a.get("tools") or []) for a in agents.values())
    if not wanted or not memory.get("enabled", True):
        return []
    raw = Path(str(memory.get("file", "memory.jsonl"))).expanduser()
    problem = probe_memory_server(raw if raw.is_absolute() else base / raw)
    if problem is None:
        return []
    return [Problem("memory", problem, "`beamish memory check FILE` names what is wrong with the file")]


def _loader_fix(where: str, what: str) -> str:
    """A fix for the loader's problems where the message alone does not show the TOML to write."""
    if where.endswith(".cron"):
        return 'cron = "MIN HOUR DAY MONTH WEEKDAY", e.g. cron = "0 9 * * 1-5" (09:00 on weekdays)'
    if ".policy" in where and ".context." not in where:  # the agent's policy, not its context's
        return (
            'policy = { on_crash = "restart", on_hang = "restart", on_loop = "pause", on_budget = "pause" }'
        )
    if where.endswith(".instructions") and "missing" in what:
        return 'instructions = """What the agent is for."""'
    return ""
