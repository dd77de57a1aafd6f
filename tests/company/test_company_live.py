"""A running Company is the dashboard's source: the live tree, its events, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from beamish.company import CompanyConfig, load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.dashboard import DashboardServer
from beamish.testing import wait_for

pytestmark = pytest.mark.timeout(60)


def config(tmp_path: Path, store: str = "sqlite:///journal.db") -> CompanyConfig:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "Priorities set."}]}))
    agent = {
        "instructions": "Run the company.",
        "model": "scripted:ceo.json",
        "isolation": "task",
        "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    }
    data = {
        "store": {"url": store},
        "memory": {"enabled": False},
        "tree": {"groups": {"leadership": {"agents": ["ceo", "coo"], "strategy": "one_for_all"}}},
        "agents": {"ceo": agent, "coo": agent},
    }
    return load_config_data(data, tmp_path / "beamish.toml")


async def test_the_live_tree_shows_groups_agents_running_and_spend(tmp_path: Path, store_url: str) -> None:
    cfg = config(tmp_path, store_url)
    async with Company(cfg, parts=company_parts(cfg)) as company:
        tree = await company.tree()
        leadership = tree.children[0]
        assert (leadership.id, leadership.strategy) == ("leadership", "one_for_all")
        assert [(c.id, c.state) for c in leadership.children] == [("ceo", "running"), ("coo", "running")]
        run_id = await company.submit("ceo", "Set today's priorities", "p-1")
        done = await company.node.result(run_id, timeout=20)
        assert done.status == "succeeded"
        tree = await company.tree()
        assert tree.children[0].children[0].spent_usd is not None
        assert tree.children[0].children[0].spent_usd > 0


async def test_the_dashboard_served_by_the_node_streams_its_events_and_resumes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with (
        Company(cfg, parts=company_parts(cfg)) as company,
        DashboardServer(company, port=0) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        tree = (await client.get("/api/tree")).json()
        assert tree["children"][0]["children"][1]["id"] == "coo"
        seen: list[str] = []

        async def read_events() -> None:
            async with client.stream("GET", "/api/events?replay=100") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["kind"])

        reader = asyncio.create_task(read_events())
        try:
            await wait_for(lambda: "child.started" in seen, timeout=10, what="child.started over SSE")
            refused = await client.post("/api/agents/coo/resume")  # not paused: nothing to resume
            assert refused.status_code == 409 and "is not paused" in refused.json()["error"]
            await company.pause("coo")
            r = await client.post("/api/agents/coo/resume")
            assert r.json() == {"resumed": "coo"}
            await wait_for(lambda: "agent.resumed" in seen, timeout=10, what="agent.resumed over SSE")
            assert (await client.post("/api/agents/cmo/resume")).status_code == 404
        finally:
            reader.cancel()


async def test_pause_by_hand_parks_the_next_run_and_resume_lets_it_finish(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with Company(cfg, parts=company_parts(cfg)) as company:
        await company.pause("ceo")
        run_id = await company.submit("ceo", "Set today's priorities", "p-2")
        parked = await company.node.result(run_id, timeout=20)
        assert parked.status == "paused"
        await company.resume("ceo")
        done = await company.node.result(run_id, timeout=20)  # resume re-queued it: it runs to the end
        assert done.status == "succeeded"
        await wait_for(lambda: any(e.kind == "agent.paused" for e in company.hub.recent), timeout=5)


async def test_an_agent_started_without_protection_is_marked_in_the_live_tree_and_in_the_store(
    tmp_path: Path,
) -> None:
    from beamish.cli._render import tree_view
    from beamish.company._view import StoreView
    from beamish.journal import open_store

    cfg = config(tmp_path)
    parts = company_parts(cfg)
    parts.agent_overrides["coo"] = {"watchdog": None}  # its author opted out
    async with Company(cfg, parts=parts) as company:
        announced = lambda: any(e.kind == "agent.unprotected" for e in company.hub.recent)  # noqa: E731
        await wait_for(announced, timeout=10, what="the coo's agent.unprotected event")
        marks = {n.id: n.unprotected for n in (await company.tree()).walk() if n.type == "agent"}
        assert marks == {"ceo": None, "coo": "watchdog=None"}
        lines = [line for line in _rendered(tree_view(await company.tree())) if "UNPROTECTED" in line]
        assert len(lines) == 1 and "coo" in lines[0] and "(watchdog=None)" in lines[0]
    async with await open_store(cfg.store_url) as store:  # no node running: read from the store
        stored = {n.id: n.unprotected for n in (await StoreView(cfg, store).tree()).walk()}
    assert (stored["ceo"], stored["coo"]) == (None, "watchdog=None")


def _rendered(renderable: object) -> list[str]:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text().splitlines()
