"""The company-wide caps of a config hold in the running company: across its agents, as one budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beamish import OverBudget
from beamish.agent._budget import Budget, load_company_budget
from beamish.company import CompanyConfig, load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(60)

USAGE = {"input_tokens": 50, "output_tokens": 4000}  # $0.04005 a call at the price below


def _agent(tmp: Path, name: str, isolation: str) -> dict[str, Any]:
    # a tool the agent lacks answers with an error, which is all a step needs here
    turns = [
        {"text": "Working.", "tool_calls": [{"name": "look", "arguments": {"at": i}}], "usage": USAGE}
        for i in range(2)
    ]
    turns.append({"text": "done", "usage": USAGE})
    log = tmp / f"{name}.calls.jsonl"
    (tmp / f"{name}.json").write_text(json.dumps({"turns": turns, "call_log": str(log)}))
    return {
        "instructions": "Work.",
        "model": f"scripted:{name}.json",
        "isolation": isolation,
        "max_tokens": 4096,  # worst case per call ~$0.043
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 10.0},
    }


def _config(tmp: Path, budget: dict[str, Any], isolation: str = "task") -> CompanyConfig:
    data = {
        "store": {"url": "sqlite:///journal.db"},
        "memory": {"enabled": False},
        "company": {"timezone": "Europe/Paris"},
        "budget": budget,
        "agents": {n: _agent(tmp, n, isolation) for n in ("cfo", "coo")},
    }
    return load_config_data(data, tmp / "beamish.toml")


def _calls(tmp: Path, name: str) -> int:
    log = tmp / f"{name}.calls.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_a_company_cap_in_the_config_pauses_agents_that_are_each_within_their_own(
    tmp_path: Path, isolation: str
) -> None:
    cfg = _config(tmp_path, {"per_day_usd": 0.15}, isolation)
    async with Company(cfg, parts=company_parts(cfg), control=False) as company:
        first = await company.node.result(await company.submit("cfo", "close the books", "r-1"), timeout=30)
        # three calls ($0.12) fit the company's $0.15 a day; no agent has a cap of its own
        assert first.status == "succeeded"
        assert _calls(tmp_path, "cfo") == 3
        second = await company.node.result(await company.submit("coo", "plan the week", "r-2"), timeout=30)
        assert second.status == "paused"  # the other agent's first call does not fit what is left
        assert isinstance(second.reason, OverBudget)
        assert second.reason.limit == "company.per_day_usd"
        assert second.reason.spent == pytest.approx(0.1202, abs=1e-4)
        assert _calls(tmp_path, "coo") == 0
        third = await company.node.result(await company.submit("cfo", "again", "r-3"), timeout=30)
        assert third.status == "paused"  # the company as a whole is paused: the first agent waits too
        assert _calls(tmp_path, "cfo") == 3
    async with await open_store(cfg.store_url) as store:
        rows = await store.fetchall("SELECT body FROM events WHERE kind = 'budget.exceeded'")
        stored = await load_company_budget(store)
    assert [json.loads(r["body"])["data"]["scope"] for r in rows] == ["company"]
    assert stored == Budget(per_day_usd=0.15, tz="Europe/Paris")


async def test_the_config_is_the_source_of_the_company_caps_a_config_without_them_removes_them(
    tmp_path: Path,
) -> None:
    capped = _config(tmp_path, {"total_usd": 5.0, "tz": "UTC", "warn_at": 0.5})
    async with Company(capped, parts=company_parts(capped), control=False):
        pass
    async with await open_store(capped.store_url) as store:
        assert await load_company_budget(store) == Budget(total_usd=5.0, warn_at=0.5)
    uncapped = _config(tmp_path, {})
    async with Company(uncapped, parts=company_parts(uncapped), control=False):
        pass
    async with await open_store(uncapped.store_url) as store:
        assert await load_company_budget(store) is None
