"""Whose change it is decides what the rollback guard does about overspending: a person's reload
that makes runs dearer is flagged and stays; an agent's proposal that overspends is rolled back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from beamish.cli._app import app
from beamish.cli._render import tree_view
from beamish.company import attach_upgrades
from beamish.company._company import Company
from beamish.company._tree import CompanyParts
from beamish.testing import FakeClock
from beamish.upgrade import ProbationRules

from ._company import next_event, script, write_company

pytestmark = pytest.mark.timeout(60)

_CHEAP = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
#: A thousand tokens each way: $0.018 a run at the cheap price, $0.18 at ten times it.
_TURN = {"text": "Books balanced.", "usage": {"input_tokens": 1000, "output_tokens": 1000}}


def _parts(clock: FakeClock) -> CompanyParts:
    parts = CompanyParts()
    attach_upgrades(parts, rules=ProbationRules(window_s=600.0, min_bad=2), clock=clock)
    return parts


async def _runs(company: Company, agent: str, tag: str, n: int) -> list[Any]:
    ids = [await company.submit(agent, f"Book day {i}.", f"{tag}-{i}") for i in range(n)]
    return [await company.node.result(run_id, timeout=20) for run_id in ids]


async def test_a_persons_reload_raising_a_price_is_flagged_not_rolled_back(tmp_path: Path) -> None:
    model = script(tmp_path / "books.json", [_TURN])
    toml = tmp_path / "beamish.toml"
    accountant = {"instructions": "Book.", "model": model, "budget": {"per_run_usd": 0.05}}
    cfg = write_company(toml, {"accountant": {**accountant, "price": _CHEAP}})
    async with Company(cfg, parts=_parts(FakeClock(start=1_000.0))) as company:
        assert {r.status for r in await _runs(company, "accountant", "before", 2)} == {"succeeded"}
        dearer = {"input_per_mtok": 30.0, "output_per_mtok": 150.0}
        write_company(toml, {"accountant": {**accountant, "price": dearer}})
        report = await company.reload(str(toml))
        assert report["upgraded"] == ["root/accountant"]
        paused = await _runs(company, "accountant", "after", 2)
        assert {(r.status, getattr(r.reason, "kind", None)) for r in paused} == {("paused", "over_budget")}
        await company.upgrader.check()
        flagged = await next_event(company, "agent.flagged")
        assert flagged.data["version"] == 2 and flagged.data["author"] == "person"
        assert "overspent its budget in 2 of 2 runs" in flagged.data["why"]
        active = await company.upgrader.versions.active("accountant")
        assert active is not None and active.version == 2  # the person's price stays
        assert (active.detail or "").startswith("flagged: version 2 overspent")
        shown = {n.id: n.version for n in (await company.tree()).walk()}["accountant"]
        assert shown is not None and shown.startswith("v2 (by person, flagged: version 2 overspent")
        await company.upgrader.check()  # flagged once, not at every look
        kinds = [e.kind for _, e in await company.store.events(limit=5000)]
        assert kinds.count("agent.flagged") == 1 and "agent.rolled_back" not in kinds


async def test_an_agents_proposal_that_overspends_is_still_rolled_back(tmp_path: Path) -> None:
    proposal = {
        "name": "propose_upgrade",
        "arguments": {
            "agent": "accountant",
            "changes": {"budget": {"per_run_usd": 0.001}},
            "reason": "spend less per run",
        },
    }
    improver = script(tmp_path / "propose.json", [{"tool_calls": [proposal]}, {"text": "{last_tool}"}])
    books = script(tmp_path / "books.json", [_TURN])
    agents = {
        "accountant": {"instructions": "Book.", "model": books, "budget": {"per_run_usd": 0.05}},
        "improver": {
            "instructions": "Improve.",
            "model": improver,
            "tools": ["beamish.upgrade:propose_upgrade"],
        },
    }
    cfg = write_company(tmp_path / "beamish.toml", agents)
    async with Company(cfg, parts=_parts(FakeClock(start=1_000.0))) as company:
        assert {r.status for r in await _runs(company, "accountant", "before", 2)} == {"succeeded"}
        done = await company.node.result(
            await company.submit("improver", "Cut costs.", "improve"), timeout=20
        )
        assert "proposed version 2 of accountant" in str(done.output)
        await next_event(company, "agent.upgraded", lambda e: e.data["version"] == 2)
        paused = await _runs(company, "accountant", "after", 2)
        assert {(r.status, getattr(r.reason, "kind", None)) for r in paused} == {("paused", "over_budget")}
        # two looks at once (the node's own watch and this one) judge the trial once
        await asyncio.gather(company.upgrader.check(), company.upgrader.check())
        event = await next_event(company, "agent.rolled_back")
        assert (event.data["from"], event.data["to"]) == (2, 1)
        assert "overspent its budget in 2 of 2 runs" in event.data["why"]
        kinds = [e.kind for _, e in await company.store.events(limit=5000)]
        assert "agent.flagged" not in kinds and kinds.count("agent.rolled_back") == 1
        active = await company.upgrader.versions.active("accountant")
        assert active is not None and active.version == 1


async def test_status_and_budget_show_the_running_versions_caps_and_prices_and_a_file_that_differs(
    tmp_path: Path,
) -> None:
    model = script(tmp_path / "books.json", [_TURN])
    toml = tmp_path / "beamish.toml"
    accountant = {"instructions": "Book.", "model": model, "budget": {"per_run_usd": 0.05}}
    cfg = write_company(toml, {"accountant": {**accountant, "price": _CHEAP}})
    model = cfg.agents["accountant"].model  # the script's path, resolved beside the config
    async with Company(cfg, parts=_parts(FakeClock(start=1_000.0))) as company:
        dearer = {"input_per_mtok": 30.0, "output_per_mtok": 150.0}
        write_company(toml, {"accountant": {**accountant, "price": dearer}})
        await company.reload(str(toml))
        node = {n.id: n for n in (await company.tree()).walk()}["accountant"]
        assert node.running == {
            "version": 2,
            "caps": {"per_run_usd": 0.05},
            "prices": {model: dearer},
            "on_disk": [],
        }
        wider = {**accountant, "budget": {"per_run_usd": 0.1, "per_day_usd": 2.0}, "price": dearer}
        write_company(toml, {"accountant": wider})  # edited, not reloaded: the node still runs v2
        root = await company.tree()
        node = {n.id: n for n in root.walk()}["accountant"]
        assert node.running is not None
        assert node.running["on_disk"] == ["per_run_usd $0.05 → $0.10", "per_day_usd none → $2.00"]
        console = Console(width=400, record=True)
        console.print(tree_view(root))
        shown = console.export_text()
        assert f"per_run $0.05; {model} $30/$150 per Mtok" in shown
        assert "(beamish.toml on disk differs: per_run_usd $0.05 → $0.10, per_day_usd none → $2.00)" in shown
    answer = await asyncio.to_thread(CliRunner().invoke, app, ["budget", "--json", "-c", str(toml)])
    assert answer.exit_code == 0, answer.output
    rows = {row["agent"]: row for row in json.loads(answer.output)}
    assert rows["accountant"]["running"]["version"] == 2
    assert rows["accountant"]["cap_per_day_usd"] is None  # the running version has no daily cap
    assert rows["accountant"]["running"]["on_disk"][0] == "per_run_usd $0.05 → $0.10"
