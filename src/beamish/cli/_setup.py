"""``beamish init`` and ``beamish check``: a company to start from, and every reason it would not run.

``run``, ``demo`` and ``reload`` call :func:`preflight` first, so a company that cannot run starts
nothing and says why, all at once, instead of crashing run after run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from beamish._exceptions import ConfigError
from beamish.cli._common import ConfigOption, JsonOption, fail, load
from beamish.cli._output import console, emit_json, err
from beamish.company._config import CompanyConfig
from beamish.company._preflight import Problem, check_file, check_loaded
from beamish.company._scaffold import MINIMAL_TASK, MODELS, TEMPLATES, scaffold


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (init, check):
        app.command()(command)


def _shown(path: Path) -> str:
    """``path`` as the user would type it: relative to the current folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the company.")] = Path("."),
    template: Annotated[
        str, typer.Option(help="minimal: one agent, one tool, one schedule; solo: the demo's eight agents.")
    ] = "minimal",
    model: Annotated[
        str,
        typer.Option(
            help="scripted (offline, no key), anthropic, openai, or local (an OpenAI-compatible server)."
        ),
    ] = "scripted",
    force: Annotated[
        bool, typer.Option(help="Replace an existing beamish.toml (tools and scripts are kept).")
    ] = False,
) -> None:
    """Scaffold a company that runs at once: `beamish run`, then `beamish submit … --wait`."""
    if template not in TEMPLATES:
        raise fail(f"--template: expected one of {', '.join(TEMPLATES)}, got {template!r}", 2)
    if model not in MODELS:
        raise fail(f"--model: expected one of {', '.join(MODELS)}, got {model!r}", 2)
    shown = _shown(directory / "beamish.toml")
    try:
        made = scaffold(directory, template, model, force=force, shown=shown)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    load(made.config)  # what was written must load
    console.print(f"Created the {template} company on the {model} model: {shown}")
    for kept in made.kept:
        console.print(f"  kept {_shown(kept)} (yours; not overwritten)")
    _next_steps(shown, made.first_agent, made.key, _task(template))


def _task(template: str) -> str:
    return MINIMAL_TASK if template == "minimal" else "Set this week's priorities."


def _next_steps(shown: str, agent: str, key: str | None, task: str) -> None:
    console.print("Next:")
    if key is not None:
        value = "http://127.0.0.1:11434/v1" if key == "OPENAI_BASE_URL" else "…"
        console.print(f"  export {key}={value}")
    console.print(f"  beamish run -c {shown}")
    console.print(f'  beamish submit {agent} "{task}" --wait -c {shown}    # in another terminal')
    console.print(f"  beamish show RUN -c {shown}    # every step the run took")


def check(config: ConfigOption = Path("beamish.toml"), as_json: JsonOption = False) -> None:
    """Everything that would stop the company from running, one line each with its fix (exit 0 / 1).

    SDK extras for the models used, a price for every model, keys set, the store reachable and at a
    known schema, MCP tool servers start and list their tools, cron fields, policies.
    """
    _config, problems = check_file(config, os.environ)
    shown = str(config)
    if as_json:
        emit_json({"config": shown, "ok": not problems, "problems": [p.to_json() for p in problems]})
    else:
        for problem in problems:
            console.print(problem.line(shown))
        if not problems:
            console.print(f"{shown}: ok")
    if problems:
        raise typer.Exit(1)


def preflight(path: Path, *, refused: str = "nothing was started") -> CompanyConfig:
    """The loaded config, or exit 2 with every problem the check finds (servers are not started:
    the node starts them itself, supervised). ``refused`` says what did not happen."""
    config, problems = check_file(path, os.environ, servers=False)
    if problems or config is None:
        report(str(path), problems, refused)
        raise typer.Exit(2)
    return config


def preflight_loaded(config: CompanyConfig) -> None:
    """The check past the loader's for a config built in code (the demo's); exit 2 on a problem."""
    problems = check_loaded(config, os.environ)
    if problems:
        report(str(config.path), problems, "nothing was started")
        raise typer.Exit(2)


def report(shown: str, problems: list[Problem], refused: str) -> None:
    err.print(f"{shown}: {len(problems)} problem{'s' if len(problems) != 1 else ''}; {refused}")
    for problem in problems:
        err.print(problem.line(shown))
