"""The rollback guard, and who may propose upgrades."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamish.company import attach_upgrades
from beamish.company._company import Company
from beamish.company._tree import CompanyParts
from beamish.testing import FakeClock
from beamish.upgrade import ProbationRules
from beamish.upgrade._probation import Tally, Trial, verdict

from . import fixture_tools as ft
from ._company import next_event, script, write_company

pytestmark = pytest.mark.timeout(60)


async def test_an_upgrade_that_crashes_every_run_is_rolled_back_within_probation(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000.0)
    parts = CompanyParts()
    attach_upgrades(parts, rules=ProbationRules(window_s=600.0, min_bad=2), clock=clock)
    model = script(tmp_path / "done.json", [{"text": "Books balanced."}])
    cfg = write_company(tmp_path / "beamish.toml", {"accountant": {"instructions": "Book.", "model": model}})
    async with Company(cfg, parts=parts) as company:
        ok = await company.submit("accountant", "Book today.", "before")
        assert (await company.node.result(ok, timeout=20)).status == "succeeded"
        bad = await company.upgrader.upgrade(
            "accountant", author="ann", reason="try an entry", changes={"entry": f"{ft.__name__}:explode"}
        )
        assert bad.version == 2
        upgraded_at = clock.time()
        doomed = [await company.submit("accountant", f"Book {day}.") for day in ("Monday", "Tuesday")]
        event = await next_event(company, "agent.rolled_back")
        assert clock.time() < upgraded_at + 600.0  # inside the probation window
        assert (event.data["from"], event.data["to"]) == (2, 1)
        shown = {n.id: n.version for n in (await company.tree()).walk()}
        assert shown["accountant"] == "v1 (v2 rolled back)"  # what `beamish status` shows
        assert "crashed" in event.data["why"]
        history = await company.upgrader.versions.history("accountant")
        assert [(v.version, v.state) for v in history] == [(1, "active"), (2, "rolled_back")]
        assert "crashed" in (history[1].detail or "")
        for run_id in doomed:
            crashed = await company.node.result(run_id, timeout=20)
            assert (crashed.status, getattr(crashed.reason, "kind", None)) == ("failed", "crashed")
        after = await company.submit("accountant", "Book tomorrow.", "after")
        assert (await company.node.result(after, timeout=20)).status == "succeeded"
        assert (await company.store.get_run(after)).meta["agent_version"] == 1


async def test_an_upgrade_that_behaves_passes_probation_when_the_window_ends(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000.0)
    parts = CompanyParts()
    attach_upgrades(parts, rules=ProbationRules(window_s=60.0), clock=clock)
    model = script(tmp_path / "done.json", [{"text": "Done."}])
    cfg = write_company(tmp_path / "beamish.toml", {"ceo": {"instructions": "Lead.", "model": model}})
    async with Company(cfg, parts=parts) as company:
        changes = {"instructions": "Lead well."}
        await company.upgrader.upgrade("ceo", author="ann", reason="tone", changes=changes)
        run_id = await company.submit("ceo", "Plan.")
        assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
        assert "ceo" in company.upgrader.trials
        await next_event(company, "agent.upgraded")
        assert {n.id: n.version for n in (await company.tree()).walk()}["ceo"] == "v2 (upgraded by ann)"
        clock.advance(61.0)
        await company.upgrader.check()
        assert "ceo" not in company.upgrader.trials
        current = await company.upgrader.versions.active("ceo")
        assert current is not None and (current.version, current.detail) == (2, "passed probation")


async def test_only_an_agent_given_propose_upgrade_can_upgrade_another(tmp_path: Path) -> None:
    proposal = {
        "name": "propose_upgrade",
        "arguments": {
            "agent": "ceo",
            "changes": {"instructions": "Consult the CFO first.", "budget": {"per_run_usd": 0.2}},
            "reason": "fewer unapproved spends",
        },
    }
    model = script(tmp_path / "propose.json", [{"tool_calls": [proposal]}, {"text": "{last_tool}"}])
    plain = script(tmp_path / "done.json", [{"text": "Done."}])
    agents = {
        "ceo": {"instructions": "Lead.", "model": plain, "budget": {"per_run_usd": 0.5}},
        "lawyer": {"instructions": "Review.", "model": model},
        "improver": {
            "instructions": "Improve.",
            "model": model,
            "tools": ["beamish.upgrade:propose_upgrade"],
        },
    }
    cfg = write_company(tmp_path / "beamish.toml", agents)
    parts = CompanyParts()
    attach_upgrades(parts)
    async with Company(cfg, parts=parts) as company:
        refused = await company.submit("lawyer", "Improve the CEO.", "lawyer-try")
        done = await company.node.result(refused, timeout=20)
        assert "propose_upgrade" in str(done.output) and "not" in str(done.output)
        assert [v.version for v in await company.upgrader.versions.history("ceo")] == [1]

        allowed = await company.submit("improver", "Improve the CEO.", "improver-try")
        done = await company.node.result(allowed, timeout=20)
        assert "proposed version 2 of ceo" in str(done.output)

        async def upgraded() -> bool:
            active = await company.upgrader.versions.active("ceo")
            return active is not None and active.version == 2

        await next_event(company, "agent.upgraded", lambda e: e.data["version"] == 2)
        assert await upgraded()
        v2 = await company.upgrader.versions.get("ceo", 2)
        assert (v2.author, v2.reason) == ("agent:improver", "fewer unapproved spends")
        assert v2.definition["instructions"] == "Consult the CFO first."
        assert v2.definition["budget"]["data"]["per_run_usd"] == 0.2
        run_id = await company.submit("ceo", "Plan.", "ceo-after")
        assert (await company.node.result(run_id, timeout=20)).status == "succeeded"
        assert (await company.store.get_run(run_id)).meta["agent_version"] == 2


@pytest.mark.parametrize(
    ("new", "old", "why"),
    [
        (Tally(runs=4, loops=2), Tally(runs=20, loops=0), "looped in 2 of 4 runs"),
        (Tally(runs=3, over_budget=3), Tally(runs=20, over_budget=1), "overspent its budget in 3 of 3"),
        (Tally(runs=3, spend_usd=0.9), Tally(runs=10, spend_usd=1.0), "spends $0.3000 per run"),
        (Tally(runs=2, crashes=2), Tally(runs=20, crashes=1), "crashed 2 times in 2 runs"),
    ],
)
def test_a_version_that_loops_overspends_or_crashes_more_than_before_is_judged(
    new: Tally, old: Tally, why: str
) -> None:
    trial = Trial("cfo", version=3, previous=2, started=0.0, until=300.0, baseline_crashes=0)
    found = verdict(ProbationRules(), trial, new, old)
    assert found is not None and why in found.why


@pytest.mark.parametrize(
    ("new", "old"),
    [
        (Tally(runs=4, loops=1), Tally(runs=20)),  # one incident is not yet a pattern
        (Tally(runs=10, loops=2), Tally(runs=10, loops=3)),  # no worse than before
        (Tally(runs=3, spend_usd=0.33), Tally(runs=10, spend_usd=1.0)),  # within 1.5x
        (Tally(runs=20, crashes=2), Tally(runs=20, crashes=2)),
    ],
)
def test_a_version_that_does_no_worse_than_before_is_kept(new: Tally, old: Tally) -> None:
    trial = Trial("cfo", version=3, previous=2, started=0.0, until=300.0, baseline_crashes=0)
    assert verdict(ProbationRules(), trial, new, old) is None
