"""The CLI of fallbacks and deadlines: ``beamish status`` lists circuit breakers (open, probing or
counting failures); ``beamish submit --deadline`` is checked, then handed to the running node."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.agent._breaker import Breaker, BreakerPolicy
from beamish.cli import app
from beamish.company import load_config
from beamish.company._control import ControlServer, control_path
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


@pytest.fixture
def company(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--template", "solo", "--model", "anthropic"])
    assert result.exit_code == 0, result.output
    return tmp_path / "co" / "beamish.toml"


async def _fail(url: str, key: str, times: int) -> None:
    store = await open_store(url)
    try:
        breaker = Breaker(store, store.clock, BreakerPolicy(failures=3))
        for _ in range(times):
            await breaker.failed(key, "529 overloaded")
    finally:
        await store.close()


def test_status_shows_an_open_breaker_and_one_counting_failures(company: Path) -> None:
    url = load_config(company).store_url
    runner.invoke(app, ["status", "-c", str(company)])  # the store is made
    asyncio.run(_fail(url, "anthropic:claude-sick", 3))
    asyncio.run(_fail(url, "openai:gpt-flaky", 1))
    result = runner.invoke(app, ["status", "-c", str(company)])
    assert result.exit_code == 3, result.output
    assert "circuit breakers" in result.output
    sick = next(line for line in result.output.splitlines() if "anthropic:claude-sick" in line)
    assert "open" in sick and "3" in sick
    data = json.loads(runner.invoke(app, ["status", "-c", str(company), "--json"]).output)
    states = {b["key"]: (b["state"], b["failures"]) for b in data["breakers"]}
    assert states == {"anthropic:claude-sick": ("open", 3), "openai:gpt-flaky": ("closed", 1)}


def test_status_shows_no_breaker_table_when_every_model_is_healthy(company: Path) -> None:
    result = runner.invoke(app, ["status", "-c", str(company)])
    assert "circuit breakers" not in result.output


def test_submit_refuses_a_bad_deadline_before_asking_the_node(company: Path) -> None:
    result = runner.invoke(app, ["submit", "ceo", "Plan the week", "--deadline", "soon", "-c", str(company)])
    assert result.exit_code == 2, result.output
    assert "--deadline='soon' is invalid" in result.output


class _Submits:
    """A running node's stand-in that takes runs and records what it was given."""

    def __init__(self) -> None:
        self.given: list[tuple[str, object, object]] = []

    async def submit(
        self, agent: str, task: object, run_id: str | None = None, *, deadline: object = None
    ) -> str:
        self.given.append((agent, task, deadline))
        return "run-1"


def test_submit_hands_its_deadline_to_the_running_node(company: Path) -> None:
    cfg = load_config(company)
    target = _Submits()
    server = ControlServer(target, control_path(cfg.store_url, cfg.base_dir))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        result = runner.invoke(
            app, ["submit", "ceo", "Plan the week", "--deadline", "5m", "-c", str(company)]
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(server.stop())
        loop.close()
    assert result.exit_code == 0, result.output
    assert "run-1" in result.output
    assert target.given == [("ceo", "Plan the week", "5m")]
