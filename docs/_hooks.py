"""mkdocs hooks: the reference pages generated from the code, so they cannot drift from it.

A page holds a marker and the hook replaces it at build time:

- ``<!-- generated: cli -->``: every ``beamish`` command, walked from the typer app (usage, help,
  arguments and options with their defaults);
- ``<!-- generated: config -->``: every ``beamish.toml`` key, walked from the pydantic schema
  (``beamish.company._schema.ConfigFile``): type, default and the table's docstring;
- ``<!-- include: PATH -->``: a file of the repository (relative to its root), e.g. SECURITY.md.

The tests import this module too (tests/docs/test_reference.py), so a command or key the pages
would miss fails there as well as here.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # the build reads the checkout's code, installed or not
    sys.path.insert(0, str(ROOT / "src"))

_MARKER = re.compile(r"<!-- (generated|include): ([\w./-]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each marker with what it names."""
    return _MARKER.sub(_expand, markdown)


def _expand(match: re.Match[str]) -> str:
    kind, what = match.groups()
    if kind == "include":
        text = (ROOT / what).read_text(encoding="utf-8")
        text = re.sub(r"\A# .*\n", "", text)  # the page names it; its sections go one level down
        return re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
    if what == "cli":
        return cli_markdown()
    if what == "config":
        return config_markdown()
    raise ValueError(f"unknown generated page {what!r}")


# -- the command line ---------------------------------------------------------------------------


def cli_commands() -> list[tuple[str, Any]]:
    """Every command of the app as ``(path, click command)``, groups before their commands."""
    import typer.main

    from beamish.cli import app

    root = typer.main.get_command(app)  # typer's own click: groups are told by their commands
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.append((path, command))
        if hasattr(command, "commands"):
            for name in sorted(command.commands):
                sub = command.commands[name]
                if not sub.hidden:
                    walk(sub, f"{path} {name}")

    walk(root, "beamish")
    return found


def _usage(command: Any, path: str) -> str:
    ctx = command.context_class(command, info_name=path)
    return " ".join(command.collect_usage_pieces(ctx)).replace("{", "").replace("}", "")


def cli_markdown() -> str:
    out: list[str] = []
    for path, command in cli_commands():
        level = "#" * min(2 + path.count(" ") - 1, 4) if " " in path else "##"
        out.append(f"{level} `{path}`\n")
        help_text = inspect.cleandoc(command.help or "").split("\f")[0].strip()
        if help_text:
            out.append(help_text + "\n")
        if hasattr(command, "commands"):
            subs = [n for n, c in sorted(command.commands.items()) if not c.hidden]
            out.append("Commands: " + ", ".join(f"`{n}`" for n in subs) + ".\n")
        else:
            out.append(f"```text\n{path} {_usage(command, path)}\n```\n")
        rows = []
        for param in command.params:
            if param.name == "help" or getattr(param, "hidden", False):
                continue
            if param.param_type_name == "argument":
                name = f"`{(param.metavar or param.name or '').upper()}`"
                text = getattr(param, "help", None) or ""
            else:
                names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
                name = names
                text = param.help or ""
            default = param.default
            shown = "" if default is None or callable(default) or default == () else f"`{default}`"
            if getattr(param, "is_flag", False) and default is False:
                shown = ""
            if param.required:
                shown = "required"
            envvar = getattr(param, "envvar", None)
            if envvar:
                text += f" (environment: `{envvar}`)"
            rows.append(f"| {name} | {_cell(text)} | {shown} |")
        if rows:
            out.append("| argument or option | meaning | default |\n| --- | --- | --- |")
            out.append("\n".join(rows) + "\n")
    return "\n".join(out)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- beamish.toml -------------------------------------------------------------------------------


def config_keys() -> list[tuple[str, str, str, str]]:
    """Every key of ``beamish.toml`` as ``(path, type, default, table docstring)``, in schema order."""
    from pydantic import BaseModel

    from beamish.company._schema import ConfigFile

    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            nested = _model_in(field.annotation)
            if nested is not None:
                key = _table_key(path, field.annotation)
                walk(nested, key)
                continue
            rows.append((path, _type_name(field.annotation), _default(field), field.description or ""))

    walk(ConfigFile, "")
    return rows


def _model_in(annotation: Any) -> Any:
    from pydantic import BaseModel

    for arg in (annotation, *typing.get_args(annotation)):
        if inspect.isclass(arg) and issubclass(arg, BaseModel):
            return arg
    return None


def _table_key(path: str, annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is dict:
        return f"{path}.NAME."
    if origin is list:
        return f"{path}[]."
    return f"{path}."


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        shown = " \\| ".join(_type_name(a) for a in args if a is not type(None))
        return shown + " (optional)" if type(None) in args else shown
    if origin in (list, dict):
        inner = ", ".join(_type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


#: What a key means, where its schema field carries no ``description`` (a field's own description wins).
MEANINGS = {
    "company.name": "the company's name (process titles, status, alerts)",
    "company.timezone": "the zone of the company's day (budget days, quiet hours, the digest)",
    "store.url": "the journal: `sqlite:///PATH` (beside this file) or `postgresql://…`",
    "memory.enabled": "run the shared knowledge-graph memory server as a supervised child",
    "memory.file": "the memory file (JSONL, the reference server's format)",
    "memory.transport": "`http` only: every agent shares one server process",
    "memory.host": "bind address; beyond loopback a bearer token is required (`BEAMISH_MEMORY_TOKEN`, "
    "else one made for the run)",
    "memory.port": "`0`: a free port",
    "budget.per_run_usd": "cap per run",
    "budget.per_day_usd": "cap per local day",
    "budget.per_month_usd": "cap per local month",
    "budget.total_usd": "cap for all time",
    "budget.tz": "the zone of the budget's days and months (default: the company's)",
    "budget.warn_at": "fraction of a cap at which a `budget.warning` event is sent",
    "tree.strategy": "the root supervisor's strategy",
    "tree.intensity": "restarts allowed within `period` before the root gives up",
    "tree.period": "seconds of the restart-intensity window",
    "tree.groups.NAME.agents": "the agents of the group, started in list order",
    "agents.NAME.instructions": "the system prompt of beamish's loop",
    "agents.NAME.entry": "`module:function`: your own async `(task, ctx) -> answer` instead of beamish's "
    "loop ([Bring your own agent](../guides/byo.md))",
    "agents.NAME.model": "`anthropic:MODEL`, `openai:MODEL` or `scripted:FILE`, or an ordered list of them "
    "(fallbacks); for an `entry` agent, the price of a request that names no model",
    "agents.NAME.tools": "`memory`, `consult`, `ask_human`, or `module:function` import paths of "
    "`@beamish.tool` functions (this file's folder is on the path)",
    "agents.NAME.isolation": "`process`: its own OS process; `task`: an asyncio task in the node",
    "agents.NAME.restart": "OTP restart type",
    "agents.NAME.max_memory_mb": "RSS cap of a process agent (`MemoryExceeded` past it)",
    "agents.NAME.concurrency": "runs served at once ([Many runs](../guides/many-runs.md))",
    "agents.NAME.max_tokens": "the output cap of each model call",
    "agents.NAME.schedules[].cron": "five-field cron",
    "agents.NAME.schedules[].task": "the task each fire submits",
    "agents.NAME.schedules[].misfire": "late ticks beyond `grace_s`: `skip`, `once` (the latest) or `all`",
    "agents.NAME.price.input_per_mtok": "USD per million input tokens of the first model (and scripted "
    "fallbacks), for a model genai-prices lacks; other fallbacks: `prices`",
    "agents.NAME.price.output_per_mtok": "USD per million output tokens",
    "agents.NAME.prices.NAME.input_per_mtok": "`NAME` is one of the agent's models (quoted: "
    '`"openai:my-local-model"`), typically a fallback genai-prices lacks; USD per million input tokens',
    "agents.NAME.prices.NAME.output_per_mtok": "USD per million output tokens",
    "agents.NAME.watchdog.hang_after_s": "seconds without a step, chunk or `ctx.progress()`: a hang (the "
    "process is restarted, the run resumes)",
    "agents.NAME.watchdog.max_steps": 'steps a run may take before it ends `Looping("max_steps")`',
    "agents.NAME.watchdog.max_wall_s": 'seconds a run may take before it ends `Looping("max_wall_s")`',
    "agents.NAME.watchdog.first_chunk_s": "a stream's wait for its first chunk (a retried timeout past it)",
    "agents.NAME.watchdog.next_chunk_s": "a model stream's wait between chunks",
    "agents.NAME.policy.on_crash": "an exception escaping a run: restart, pause, stop or escalate",
    "agents.NAME.policy.on_hang": "a hang (the process always ends): restart, pause, stop or escalate",
    "agents.NAME.policy.on_loop": "a detected loop: pause, stop or escalate (not restart)",
    "agents.NAME.policy.on_budget": "a cap reached: pause, stop or escalate (not restart)",
    "agents.NAME.backoff.min_s": "first restart delay",
    "agents.NAME.backoff.max_s": "largest restart delay",
    "agents.NAME.backoff.jitter": "random share added to each delay",
    "agents.NAME.backoff.reset_after_s": "uptime after which the delay starts over",
    "limits.NAME.requests_per_minute": "`NAME` is a provider (`anthropic`) or `provider:model`",
    "telemetry.otel": "lifecycle events as OpenTelemetry metrics (the `otel` extra)",
    "telemetry.capture_content": "prompts, replies and tool arguments in spans (secrets still masked)",
    "telemetry.sentry_dsn": "abnormal exits, escalations, loops, hangs and budgets as Sentry issues",
    "dashboard.token_env": "the variable holding the token a non-loopback bind needs",
}


def config_markdown() -> str:
    from beamish.company._schema import ConfigFile

    tables: dict[str, list[tuple[str, str, str, str]]] = {}
    for row in config_keys():
        table = row[0].rsplit(".", 1)[0] if "." in row[0] else ""
        tables.setdefault(table, []).append(row)
    docs = _table_docs(ConfigFile)
    out: list[str] = []
    for table, rows in tables.items():
        heading = f"[[{table[:-2]}]]" if table.endswith("[]") and table.count("[]") == 1 else f"[{table}]"
        out.append(f"## `{heading}`\n" if table else "## top level\n")
        if docs.get(table):
            out.append(docs[table] + "\n")
        out.append("| key | type | default | meaning |\n| --- | --- | --- | --- |")
        for path, kind, default, described in rows:
            meaning = _cell(described or MEANINGS.get(path) or MEANINGS.get(_company_level(path), ""))
            out.append(f"| `{path.rsplit('.', 1)[-1]}` | {kind} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)


def _company_level(path: str) -> str:
    """``agents.NAME.budget.per_run_usd`` means what ``budget.per_run_usd`` means, for one agent."""
    return path.removeprefix("agents.NAME.")


def _table_docs(model: Any, prefix: str = "") -> dict[str, str]:
    docs: dict[str, str] = {}
    for name, field in model.model_fields.items():
        nested = _model_in(field.annotation)
        if nested is None:
            continue
        key = _table_key(f"{prefix}{name}", field.annotation).rstrip(".")
        doc = inspect.getdoc(nested) or ""
        if doc and doc != inspect.getdoc(nested.__mro__[1]):
            docs[key] = " ".join(doc.split("\n\n")[0].split())
        docs.update(_table_docs(nested, key + "."))
    return docs
