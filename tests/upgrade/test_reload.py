"""``reload`` changes a running company by OTP's rules: children added, removed and changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.agent._runs import runs_of
from beamish.cli._app import app
from beamish.company import attach_upgrades
from beamish.company._company import Company
from beamish.company._control import control_path, control_request
from beamish.company._tree import CompanyParts

from . import fixture_tools as ft
from ._company import script, write_company

pytestmark = pytest.mark.timeout(60)


def _parts() -> CompanyParts:
    parts = CompanyParts()
    attach_upgrades(parts)
    return parts


async def _ids(sup: object) -> list[str]:
    return [str(c.id) for c in await sup.which_children()]  # type: ignore[attr-defined]


async def test_reload_adds_removes_and_changes_children_of_a_running_tree(tmp_path: Path) -> None:
    model = script(tmp_path / "done.json", [{"text": "Done."}])
    agent = {"instructions": "Run the company.", "model": model}
    toml = tmp_path / "beamish.toml"
    cfg = write_company(toml, {"ceo": agent, "coo": agent, "cfo": agent}, {"leadership": ["ceo", "coo"]})
    async with Company(cfg, parts=_parts()) as company:
        assert await _ids(company.root) == ["leadership", "cfo"]
        assert {n.id: n.version for n in (await company.tree()).walk()}["ceo"] == "v1"
        changed = {**agent, "instructions": "Run the company, and write everything down."}
        write_company(toml, {"ceo": changed, "cfo": agent, "cto": agent}, {"leadership": ["ceo"]})
        path = control_path(cfg.store_url, cfg.base_dir)
        report = await control_request(path, {"op": "reload", "author": "ann", "reason": "new org chart"})
        assert report["added"] == ["root/cto"]
        assert report["removed"] == ["root/leadership/coo"]
        assert report["upgraded"] == ["root/leadership/ceo"]
        assert await _ids(company.root) == ["leadership", "cfo", "cto"]
        leadership = (await company.root.which_children())[0].ref
        assert await _ids(leadership) == ["ceo"]
        shown = {n.id: n for n in (await company.tree()).walk()}
        assert "coo" not in shown and shown["cto"].state == "running"  # what `beamish status` shows
        history = await company.upgrader.versions.history("ceo")
        assert [(v.version, v.author, v.reason, v.state) for v in history] == [
            (1, "config", "started from config", "superseded"),
            (2, "ann", "new org chart", "active"),
        ]
        assert history[1].definition["instructions"].endswith("write everything down.")
        for agent_name in ("ceo", "cto"):
            run_id = await company.submit(agent_name, "Plan the week.")
            done = await company.node.result(run_id, timeout=20)
            assert done.status == "succeeded"
        ceo_run = await company.store.get_run(await company.submit("ceo", "Again.", "ceo-2"))
        await company.node.result(ceo_run.run_id, timeout=20)
        assert (await company.store.get_run("ceo-2")).meta["agent_version"] == 2
        assert "coo" not in runs_of(company.node).refs
        with pytest.raises(Exception, match="coo"):
            await company.submit("coo", "Anyone there?")


async def test_a_run_in_progress_finishes_on_the_version_it_started_with(tmp_path: Path) -> None:
    ft.GATE, ft.ENTERED = asyncio.Event(), asyncio.Event()
    model = script(
        tmp_path / "hold.json",
        [{"tool_calls": [{"name": "hold", "arguments": {"note": "mid-run"}}]}, {"text": "Finished."}],
    )
    agent = {"instructions": "Version one.", "model": model, "tools": [f"{ft.__name__}:hold"]}
    cfg = write_company(tmp_path / "beamish.toml", {"ceo": agent})
    async with Company(cfg, parts=_parts()) as company:
        first = await company.submit("ceo", "A long task.", "long")
        await asyncio.wait_for(ft.ENTERED.wait(), 20)
        upgraded = await company.upgrader.upgrade(
            "ceo", author="ann", reason="clearer instructions", changes={"instructions": "Version two."}
        )
        assert upgraded.version == 2 and upgraded.state == "active"
        assert (await company.store.get_run(first)).status == "running"
        ft.GATE.set()
        assert (await company.node.result(first, timeout=20)).status == "succeeded"
        assert (await company.store.get_run(first)).meta["agent_version"] == 1
        ft.GATE, ft.ENTERED = asyncio.Event(), asyncio.Event()
        ft.GATE.set()
        second = await company.submit("ceo", "Another task.", "next")
        assert (await company.node.result(second, timeout=20)).status == "succeeded"
        assert (await company.store.get_run(second)).meta["agent_version"] == 2
        started = [
            e.data.get("version")
            for _, e in await company.store.events(0, limit=1000)
            if e.kind == "run.started"
        ]
        assert started == [1, 2]


async def test_a_process_isolated_agent_takes_its_new_version_between_runs(tmp_path: Path) -> None:
    model = script(tmp_path / "done.json", [{"text": "Reviewed: {task}"}])
    agent = {"instructions": "Review contracts.", "model": model, "isolation": "process"}
    cfg = write_company(tmp_path / "beamish.toml", {"lawyer": agent})
    async with Company(cfg, parts=_parts()) as company:
        before = await company.submit("lawyer", "The lease.", "before")
        assert (await company.node.result(before, timeout=30)).status == "succeeded"
        pid_ref = runs_of(company.node).refs["lawyer"]
        changes = {"instructions": "Review contracts; flag auto-renewals."}
        await company.upgrader.upgrade("lawyer", author="ann", reason="renewals", changes=changes)
        after = await company.submit("lawyer", "The licence.", "after")
        assert (await company.node.result(after, timeout=30)).status == "succeeded"
        assert (await company.store.get_run(before)).meta["agent_version"] == 1
        assert (await company.store.get_run(after)).meta["agent_version"] == 2
        assert runs_of(company.node).refs["lawyer"] is pid_ref  # switched in place, not restarted


async def test_beamish_reload_reaches_the_running_node_and_names_what_changed(tmp_path: Path) -> None:
    model = script(tmp_path / "done.json", [{"text": "Done."}])
    agent = {"instructions": "Review contracts.", "model": model}
    toml = tmp_path / "beamish.toml"
    cfg = write_company(toml, {"lawyer": agent})
    async with Company(cfg, parts=_parts()) as company:
        changed = tmp_path / "changed.toml"
        weekly = [{"id": "lawyer-weekly", "cron": "0 10 * * 1", "task": "Review this week's contracts."}]
        lawyer = {**agent, "instructions": "Flag auto-renewals.", "schedules": weekly}
        write_company(changed, {"lawyer": lawyer, "cto": agent})
        runner = CliRunner()
        args = ["reload", str(changed), "--reason", "renewals"]
        done = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        assert "added: root/cto" in done.output and "upgraded: root/lawyer" in done.output
        assert "not applied: schedules" in done.output
        v2 = await company.upgrader.versions.get("lawyer", 2)
        assert v2.author.startswith("person:") and v2.reason == "renewals"
    gone = await asyncio.to_thread(CliRunner().invoke, app, ["reload", str(toml)])
    assert gone.exit_code == 1 and "no node is running" in gone.output


async def test_a_version_made_active_by_another_node_is_taken_up_here(tmp_path: Path) -> None:
    model = script(tmp_path / "done.json", [{"text": "Done."}])
    cfg = write_company(tmp_path / "beamish.toml", {"cfo": {"instructions": "Approve.", "model": model}})
    async with Company(cfg, parts=_parts()) as company:
        versions = company.upgrader.versions
        first = await versions.active("cfo")
        assert first is not None
        elsewhere = {**first.definition, "instructions": "Approve, then record the decision."}
        await versions.record("cfo", elsewhere, author="person:bob", reason="on node 2")
        await company.upgrader.check()
        assert runs_of(company.node).upgrades["cfo"].version == 2
        run_id = await company.submit("cfo", "Approve the laptop.")
        assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
        assert (await company.store.get_run(run_id)).meta["agent_version"] == 2
