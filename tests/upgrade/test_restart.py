"""A restart keeps what the running company had: upgrades, rollbacks and probations survive it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish.cli._render import tree_view
from beamish.company import attach_upgrades, load_config
from beamish.company._company import Company
from beamish.company._tree import CompanyParts
from beamish.company._view import StoreView
from beamish.journal import open_store
from beamish.testing import FakeClock
from beamish.upgrade import ProbationRules

from . import fixture_tools as ft
from ._company import next_event, script, write_company

pytestmark = pytest.mark.timeout(90)

EXPLODE = f"{ft.__name__}:explode"


def _parts(clock: FakeClock) -> CompanyParts:
    parts = CompanyParts()
    attach_upgrades(parts, rules=ProbationRules(window_s=600.0, min_bad=2), clock=clock)
    return parts


def _first_file(tmp_path: Path) -> tuple[Path, FakeClock]:
    """The company's first ``beamish.toml`` (version 1 of the accountant), and a probation clock."""
    toml = tmp_path / "beamish.toml"
    write_company(toml, _agents(tmp_path))
    return toml, FakeClock(start=1_000.0)


def _company(toml: Path, clock: FakeClock) -> Company:
    """The company as ``beamish run`` starts it from the file at ``toml`` now."""
    return Company(load_config(toml), parts=_parts(clock))


def _agents(tmp_path: Path, **fields: Any) -> dict[str, dict[str, Any]]:
    model = script(tmp_path / "done.json", [{"text": "Books balanced."}])
    return {"accountant": {"model": model, **({"instructions": "Book."} | fields)}}


def _crashing(tmp_path: Path) -> dict[str, dict[str, Any]]:
    model = script(tmp_path / "done.json", [{"text": "Books balanced."}])
    return {"accountant": {"model": model, "entry": EXPLODE}}


async def _history(company: Company) -> list[tuple[int, str]]:
    return [(v.version, v.state) for v in await company.upgrader.versions.history("accountant")]


async def _crash_until_rolled_back(company: Company) -> list[str]:
    """Two runs on a version that crashes each time, until the guard rolls it back; their ids."""
    runs = [await company.submit("accountant", f"Book {day}.") for day in ("Monday", "Tuesday")]
    await next_event(company, "agent.rolled_back")
    return runs


async def _succeeds_on(company: Company, version: int) -> None:
    run_id = await company.submit("accountant", "Book today.")
    assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
    assert (await company.store.get_run(run_id)).meta["agent_version"] == version


async def test_a_rollback_survives_a_restart_with_the_reloaded_file_and_the_file_is_reported_as_drift(
    tmp_path: Path,
) -> None:
    toml, clock = _first_file(tmp_path)
    async with _company(toml, clock) as company:
        write_company(toml, _crashing(tmp_path))
        report = await company.reload(author="ann", reason="run the books in code")
        assert report["upgraded"] == ["root/accountant"]
        await _crash_until_rolled_back(company)
        assert await _history(company) == [(1, "active"), (2, "rolled_back")]
    async with _company(toml, clock) as company:
        assert await _history(company) == [(1, "active"), (2, "rolled_back")]  # no v3 from the file
        assert "accountant" not in company.upgrader.trials
        drift = await next_event(company, "agent.drift")
        assert drift.data["active"] == 1 and "entry" in drift.data["changed"]
        assert (drift.data["config_version"], drift.data["config_state"]) == (2, "rolled_back")
        shown = {n.id: n for n in (await company.tree()).walk()}["accountant"]
        assert shown.drift is not None and "v2" in shown.drift and "rolled back" in shown.drift
        assert "config differs" in str(tree_view(await company.tree()).children[0].label)
        await _succeeds_on(company, 1)
    cfg = load_config(toml)
    async with await open_store(cfg.store_url) as store:  # `beamish status` with no node running
        stopped = {n.id: n for n in (await StoreView(cfg, store).tree()).walk()}
        assert stopped["accountant"].drift == shown.drift
    async with _company(toml, clock) as company:
        write_company(toml, _agents(tmp_path))  # the file made to match what runs, and reloaded
        await company.reload(author="ann", reason="back to the books")
        agreed = await next_event(company, "agent.drift", lambda e: not e.data["changed"])
        assert agreed.data["active"] == 1
        assert {n.id: n for n in (await company.tree()).walk()}["accountant"].drift is None
        assert await _history(company) == [(1, "active"), (2, "rolled_back")]


async def test_a_good_reload_then_a_restart_with_that_file_records_no_duplicate_version(
    tmp_path: Path,
) -> None:
    toml, clock = _first_file(tmp_path)
    async with _company(toml, clock) as company:
        write_company(toml, _agents(tmp_path, instructions="Book, then reconcile."))
        await company.reload(author="ann", reason="reconcile daily")
        await _succeeds_on(company, 2)
    async with _company(toml, clock) as company:
        assert await _history(company) == [(1, "superseded"), (2, "active")]
        await _succeeds_on(company, 2)
        assert {n.id: n for n in (await company.tree()).walk()}["accountant"].drift is None
        kinds = [e.kind for _, e in await company.store.events(0, limit=1000)]
        assert "agent.drift" not in kinds


async def test_an_upgrade_still_on_probation_at_a_restart_stays_on_probation(tmp_path: Path) -> None:
    toml, clock = _first_file(tmp_path)
    async with _company(toml, clock) as company:
        await _succeeds_on(company, 1)
        write_company(toml, _crashing(tmp_path))
        await company.reload(author="ann", reason="run the books in code")
        assert "accountant" in company.upgrader.trials
    async with _company(toml, clock) as company:
        assert await _history(company) == [(1, "superseded"), (2, "active")]
        trial = company.upgrader.trials["accountant"]
        assert (trial.version, trial.previous) == (2, 1)
        await _crash_until_rolled_back(company)
        assert await _history(company) == [(1, "active"), (2, "rolled_back")]
        await _succeeds_on(company, 1)


async def test_a_file_edited_to_a_rolled_back_version_runs_it_only_on_probation_and_never_copies_it(
    tmp_path: Path,
) -> None:
    toml, clock = _first_file(tmp_path)
    async with _company(toml, clock) as company:
        await _succeeds_on(company, 1)
        in_code = {"entry": EXPLODE, "instructions": ""}  # as a config file with this entry says
        await company.upgrader.upgrade("accountant", author="ann", reason="code", changes=in_code)
        await _crash_until_rolled_back(company)
    write_company(toml, _crashing(tmp_path))  # the operator edits the file to what was rolled back
    async with _company(toml, clock) as company:
        trial = company.upgrader.trials["accountant"]
        assert (trial.version, trial.previous) == (2, 1)
        upgraded = await next_event(company, "agent.upgraded", lambda e: e.data["version"] == 2)
        assert upgraded.data["author"] == "config" and upgraded.data["probation_s"] == 600.0
        for run_id in await _crash_until_rolled_back(company):  # judged on what it does now
            crashed = await company.node.result(run_id, timeout=20)
            assert (crashed.status, getattr(crashed.reason, "kind", None)) == ("failed", "crashed")
            assert (await company.store.get_run(run_id)).meta["agent_version"] == 2
        assert await _history(company) == [(1, "active"), (2, "rolled_back")]
        await _succeeds_on(company, 1)
