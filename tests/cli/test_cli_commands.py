"""The CLI on a company that is not running: scaffolding, config errors, store fallbacks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _company_helpers import TreeSource
from beamish.cli import app
from beamish.company import load_config
from beamish.company._control import ControlServer, control_path
from beamish.dashboard import TreeNode

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


@pytest.fixture
def company(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--template", "solo", "--model", "anthropic"])
    assert result.exit_code == 0, result.output
    return tmp_path / "co" / "beamish.toml"


def test_init_scaffolds_the_eight_agent_company_that_loads(company: Path) -> None:
    cfg = load_config(company)
    assert sorted(cfg.agents) == sorted(
        ["ceo", "cfo", "coo", "marketing", "accountant", "lawyer", "cto", "improver"]
    )
    assert all(a.model.startswith("anthropic:") for a in cfg.agents.values())
    assert (company.parent / "solo_tools.py").is_file()


def test_init_refuses_to_overwrite_an_existing_company(company: Path) -> None:
    result = runner.invoke(app, ["init", str(company.parent), "--template", "solo"])
    assert result.exit_code == 1
    assert "exists; pass --force" in result.output


def test_a_bad_config_exits_2_naming_the_key(company: Path) -> None:
    company.write_text(company.read_text().replace('strategy = "rest_for_one"', 'strategy = "rest_for_two"'))
    result = runner.invoke(app, ["status", "-c", str(company)])
    assert result.exit_code == 2
    assert "tree.groups.finance.strategy: expected one of" in result.output


def test_status_without_a_node_reads_the_store_and_exits_3(company: Path) -> None:
    result = runner.invoke(app, ["status", "-c", str(company)])
    assert result.exit_code == 3, result.output
    agents = [line for line in result.output.splitlines() if "restarts 0" in line]
    assert len(agents) == 8 and all("next " in line for line in agents)  # piped: one line each, unwrapped
    assert max(len(line) for line in agents) > 80
    for name in ("finance", "rest_for_one", "accountant", "improver", "next "):
        assert name in result.output
    assert "no node is running" in result.output


def test_pause_without_a_node_says_none_is_running(company: Path) -> None:
    result = runner.invoke(app, ["pause", "cfo", "-c", str(company)])
    assert result.exit_code == 1
    assert "no node is running this company" in result.output


def test_commands_naming_an_unknown_agent_list_the_known_ones(company: Path) -> None:
    result = runner.invoke(app, ["resume", "cmo", "-c", str(company)])
    assert result.exit_code == 1
    assert "no agent named 'cmo' (agents: ceo, coo, cfo" in result.output


def test_runs_and_budget_and_events_work_on_an_empty_store(company: Path) -> None:
    for args in (["runs"], ["budget"], ["events"]):
        result = runner.invoke(app, [*args, "-c", str(company)])
        assert result.exit_code == 0, (args, result.output)
    for args in (["runs"], ["budget"], ["events"], ["schedules", "list"]):
        result = runner.invoke(app, [*args, "-c", str(company), "--json"])
        assert result.exit_code == 0, (args, result.output)
        assert isinstance(__import__("json").loads(result.stdout), list), (args, result.stdout)
    assert "(company)" in runner.invoke(app, ["budget", "-c", str(company)]).output


def test_journal_prune_reports_what_it_deleted_and_refuses_a_bad_duration(company: Path) -> None:
    result = runner.invoke(app, ["journal", "prune", "--older-than", "7d", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert "pruned 0 runs" in result.output
    bad = runner.invoke(app, ["journal", "prune", "--older-than", "a week", "-c", str(company)])
    assert bad.exit_code != 0
    assert "expected a duration such as 30d" in bad.output


class _Node(TreeSource):
    """A control server on its own loop in a thread, standing in for a running node."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            TreeNode("root", "supervisor", children=[TreeNode("cfo", "agent", state="paused", restarts=3)])
        )
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    async def pause(self, agent: str) -> None:
        self.root.children[0].state = "paused"

    async def resume(self, agent: str) -> None:
        self.root.children[0].state = "running"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = ControlServer(self, self.path)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.stop())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def node(company: Path) -> Iterator[_Node]:
    cfg = load_config(company)
    n = _Node(control_path(cfg.store_url, cfg.base_dir))
    n.thread.start()
    assert n.ready.wait(5)
    yield n
    n.stop()


def test_status_and_resume_talk_to_a_running_node(company: Path, node: _Node) -> None:
    result = runner.invoke(app, ["status", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert "paused" in result.output and "restarts 3" in result.output
    assert "no node is running" not in result.output
    result = runner.invoke(app, ["resume", "cfo", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert node.root.children[0].state == "running"


def test_run_without_the_models_api_key_names_it_and_starts_nothing(
    company: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(app, ["run", str(company)])
    assert result.exit_code == 2
    assert (
        "agents.ceo.model: 'anthropic:claude-sonnet-4-5' needs ANTHROPIC_API_KEY, which is not set"
        in result.output
    )
    assert "nothing was started" in result.output
    assert list((company.parent / "state").iterdir()) == []  # no store, no memory file, no socket


def test_openai_models_need_a_key_unless_a_local_server_is_named(company: Path) -> None:
    from beamish.company._credentials import missing_credentials

    company.write_text(company.read_text().replace('"anthropic:claude-sonnet-4-5"', '"openai:gpt-4o-mini"'))
    cfg = load_config(company)
    missing = missing_credentials(cfg, {"ANTHROPIC_API_KEY": "k"})
    assert list(missing) == ["OPENAI_API_KEY"] and "ceo" in missing["OPENAI_API_KEY"]
    assert (
        missing_credentials(cfg, {"ANTHROPIC_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"})
        == {}
    )
    assert missing_credentials(cfg, {"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": ""}) == missing


def test_init_elsewhere_tells_how_to_run_that_company(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["init", str(tmp_path / "elsewhere"), "--template", "solo", "--model", "anthropic"]
    )
    assert result.exit_code == 0, result.output
    assert f"beamish run -c {tmp_path / 'elsewhere' / 'beamish.toml'}" in result.output
    assert "export ANTHROPIC_API_KEY=" in result.output


def test_runs_shows_why_a_run_failed_or_paused() -> None:
    from rich.console import Console

    from beamish._exits import Crashed, OverBudget
    from beamish.cli._render import runs_table
    from beamish.journal._records import Run

    runs = [
        Run("r1", "ceo", "t", "failed", reason=Crashed("ModelError: no script matches the task 'x'")),
        Run("r2", "coo", "t", "paused", reason=OverBudget(limit="per_day", spent=0.3, cap=0.25)),
        Run("r3", "cfo", "t", "succeeded"),
    ]
    console = Console(width=250, record=True)
    console.print(runs_table(runs))
    lines = console.export_text().splitlines()
    assert "crashed: ModelError: no script matches the task 'x'" in lines[1]
    assert "over_budget: per_day: spent $0.30 of $0.25" in lines[2]
    assert lines[3].rstrip().endswith(":00")  # a run that succeeded has no why


def test_events_prints_one_line_per_event_when_piped(company: Path) -> None:
    from beamish._events import Event
    from beamish.journal import open_store

    async def record() -> None:
        store = await open_store(load_config(company).store_url)
        try:
            data = {"agent": "accountant", "run_id": "schedule:accountant-books:2026-11-26T18:00:00Z"}
            await store.append_event(
                Event("run.started", "schedule:accountant-books:2026-11-26T18:00:00Z", data)
            )
        finally:
            await store.close()

    (company.parent / "state").mkdir(exist_ok=True)
    asyncio.run(record())
    result = runner.invoke(app, ["events", "-c", str(company)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].endswith("run_id=schedule:accountant-books:2026-11-26T18:00:00Z")


def test_journal_prune_does_not_say_nothing_was_pruned_when_old_events_were(company: Path) -> None:
    from beamish._events import Event
    from beamish.journal import open_store

    async def record() -> None:
        store = await open_store(load_config(company).store_url)
        try:
            await store.append_event(Event("run.started", "r1", {"agent": "ceo"}))
        finally:
            await store.close()

    (company.parent / "state").mkdir(exist_ok=True)
    asyncio.run(record())
    result = runner.invoke(app, ["journal", "prune", "--older-than", "0s", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert "pruned 0 runs, 0 steps, 1 events" in result.output
    assert "nothing was old enough" not in result.output


def test_each_config_problem_is_one_whole_line_with_a_hint_for_a_typo(company: Path) -> None:
    company.write_text(company.read_text().replace("schedules = [", "schedule = [", 1))
    result = runner.invoke(app, ["run", str(company)])
    assert result.exit_code == 2
    line = next(ln for ln in result.output.splitlines() if "agents.ceo.schedule" in ln)
    assert line.startswith(str(company)) and line.endswith("schedules, price, prices)")
    assert "did you mean 'schedules'?" in line


def test_every_command_has_a_one_line_summary_in_the_top_level_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = (command.help or "").split("\n\n")[0]
        assert summary and "\n" not in summary, f"beamish {name}: {summary!r}"


def test_a_missing_config_says_where_it_looked_and_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BEAMISH_CONFIG", raising=False)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "beamish.toml: no such file" in result.output
    assert f"looked in {tmp_path}" in result.output and "beamish init" in result.output


def test_run_reports_a_failed_start_once(company: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from beamish import BeamishError

    async def fails(*args: object, **kwargs: object) -> None:
        raise BeamishError("cannot serve on 127.0.0.1:1: the address is in use or not available")

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setattr("beamish.cli._company.run_company", fails)
    result = runner.invoke(app, ["run", str(company)])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1, result.output
