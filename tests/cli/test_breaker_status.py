"""``beamish status`` lists the models whose circuit breaker is open or counting failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.agent._breaker import Breaker, BreakerPolicy
from beamish.cli import app
from beamish.company import load_config
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
