"""Every code example in the README and the docs runs, offline.

``python`` blocks run as programs of their own (top-level ``await`` allowed) in a fresh folder with no
API key in the environment; ``toml`` blocks are validated by the config loader (a whole company with
``load_config_data``, a fragment against the schema); ``bash``/``sh`` lines that start with
``beamish`` name a command and options the installed ``beamish`` has. Blocks marked
``<!-- example: skip "why" -->`` are counted, and their number is pinned here (see _examples.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from _examples import ROOT, Example, all_examples, program

pytestmark = pytest.mark.timeout(120)

EXAMPLES = all_examples()
#: Blocks that cannot run here, each marked with its reason on the page. Raising this needs a reason.
SKIPS_ALLOWED = 6

_RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def _of(lang: str, *, runnable: bool = True) -> list[Any]:
    chosen = [e for e in EXAMPLES if e.lang == lang and (e.marker != "skip" or not runnable)]
    return [pytest.param(e, id=e.id) for e in chosen]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "BEAMISH_CONFIG"}
    env.pop("OPENAI_BASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("example", _of("python"))
def test_python_example_runs(example: Example, tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text(program(example), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(source), example.id],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"{example.id}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("example", _of("toml"))
def test_toml_example_is_a_valid_config(example: Example, tmp_path: Path) -> None:
    from beamish.company import load_config_data
    from beamish.company._scaffold import scaffold
    from beamish.company._schema import ConfigFile

    data = tomllib.loads(example.code)
    if "agents" in data and example.marker != "scaffold":
        # a whole company: everything the loader checks (tools imported, models, cross-references),
        # beside the files `beamish init --template minimal` writes (my_tools.py, scripts/)
        scaffold(tmp_path, template="minimal", model="scripted")
        load_config_data(data, tmp_path / "beamish.toml", shown=example.id)
    else:
        ConfigFile.model_validate({"agents": {}, **data})  # a fragment: its tables and keys


def _cli_lines(example: Example) -> list[str]:
    lines = []
    for raw in example.code.splitlines():
        line = raw.split("  #")[0].strip().rstrip("&").strip()
        line = line.removeprefix(".venv/bin/")
        if line.startswith("beamish "):
            lines.append(line)
    return lines


SHELL = [e for e in EXAMPLES if e.lang in ("bash", "sh") and e.marker != "skip" and _cli_lines(e)]


@pytest.mark.parametrize("example", [pytest.param(e, id=e.id) for e in SHELL])
def test_shell_example_names_real_commands_and_options(example: Example) -> None:
    import typer.main

    from beamish.cli import app

    root = typer.main.get_command(app)
    for line in _cli_lines(example):
        words = shlex.split(line.replace("…", "x"))[1:]
        command: Any = root
        while words and hasattr(command, "commands") and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        assert not hasattr(command, "commands") or not words or words[0].startswith("-"), (
            f"{example.id}: no command {words[0]!r} in {line!r}"
        )
        known = {o for p in command.params for o in [*p.opts, *getattr(p, "secondary_opts", [])]}
        known |= {"--help"}
        for word in words:
            if word.startswith("-") and word != "-":
                assert word.split("=")[0] in known, f"{example.id}: {line!r}: no option {word}"


def test_the_scaffold_blocks_are_what_beamish_init_writes(tmp_path: Path) -> None:
    from beamish.company._scaffold import scaffold

    scaffolds = [e for e in EXAMPLES if e.marker == "scaffold"]
    assert {e.arg for e in scaffolds} >= {"my-company/beamish.toml", "my-company/my_tools.py"}
    scaffold(tmp_path / "my-company", template="minimal", model="scripted")
    for example in scaffolds:
        written = (tmp_path / str(example.arg)).read_text(encoding="utf-8")
        if example.lang == "toml":
            written = written.split("\n\n", 1)[1] if written.startswith("#") else written
            while written.startswith("#"):
                written = written.split("\n", 1)[1]
        assert written.strip() == example.code.strip(), example.id


def test_the_examples_that_do_not_run_are_few_and_say_why() -> None:
    skipped = [e for e in EXAMPLES if e.marker == "skip"]
    for example in skipped:
        assert example.arg, f"{example.id}: a skipped example says why"
    assert len(skipped) <= SKIPS_ALLOWED, [f"{e.id}: {e.arg}" for e in skipped]
    ran = [e for e in EXAMPLES if e.lang in ("python", "toml") and e.marker != "skip"]
    assert len(ran) >= 15  # the docs are mostly examples that run


@pytest.mark.parametrize("example", _of("json"))
def test_json_example_parses_and_its_stdio_mcp_servers_start(example: Example, tmp_path: Path) -> None:
    """An ``mcpServers`` snippet (Claude Desktop, Claude Code) starts as written: the command, with
    this machine's ``beamish`` and a file in a temporary folder for the paths, answers ``tools/list``."""
    data = json.loads(example.code)
    servers = data.get("mcpServers", {}) if isinstance(data, dict) else {}
    for name, server in servers.items():
        if "command" not in server:
            assert server.get("type") == "http" and server["url"].endswith("/mcp"), name
            continue
        assert Path(server["command"]).name == "beamish", name
        memory = tmp_path / f"{name}.jsonl"
        args = [str(memory) if a.endswith(".jsonl") else a for a in server.get("args", [])]
        env = {k: str(memory) if v.endswith(".jsonl") else v for k, v in server.get("env", {}).items()}
        tools = asyncio.run(_list_tools([str(Path(sys.executable).parent / "beamish"), *args], env))
        assert len(tools) == 9 and "create_entities" in tools, tools


async def _list_tools(command: list[str], env: dict[str, str]) -> list[str]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=command[0], args=command[1:], env={**_env(), **env})
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as streams,
            ClientSession(*streams) as session,
        ):
            await session.initialize()
            return [tool.name for tool in (await session.list_tools()).tools]
