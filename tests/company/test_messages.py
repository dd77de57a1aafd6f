"""What operators read: a manual pause, one event per resume, the budget that did not fit, plurals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from beamish._exits import ManualPause, OverBudget, exit_from_json
from beamish.agent._budget import Refusal
from beamish.agent._pricing import usd_to_nano
from beamish.company import load_config
from beamish.company._company import Company
from beamish.company._host import plural

pytestmark = pytest.mark.timeout(60)


def test_an_over_budget_pause_names_the_reservation_that_did_not_fit() -> None:
    refusal = Refusal(
        "run", "run:r1", "per_run_usd", usd_to_nano(0.06), usd_to_nano(0.03), usd_to_nano(0.05), None
    )
    reason = refusal.reason()
    assert reason.message == "run.per_run_usd: needs $0.05 more, $0.03 left of $0.06"
    assert refusal.evidence()["why"] == reason.message
    assert exit_from_json(reason.to_json()) == reason
    older = OverBudget(limit="agent.per_day_usd", spent=1.02, cap=1.0)  # written before `needed`
    assert older.message == "agent.per_day_usd: spent $1.02 of $1.00"
    tiny = OverBudget(limit="run.per_run_usd", spent=0.0, cap=0.001, needed=0.006166)
    assert tiny.message == "run.per_run_usd: needs $0.0062 more, $0.001 left of $0.001"


def test_a_manual_pause_round_trips_as_its_own_reason() -> None:
    reason = ManualPause()
    assert (reason.kind, reason.message, reason.normal) == ("paused", "paused by hand", True)
    assert exit_from_json(reason.to_json()) == reason


@pytest.mark.parametrize(
    ("n", "word", "text"), [(0, "agent", "0 agents"), (1, "agent", "1 agent"), (2, "change", "2 changes")]
)
def test_counts_read_with_their_plural(n: int, word: str, text: str) -> None:
    assert plural(n, word) == text


async def test_a_manual_pause_reads_as_such_and_one_resume_is_one_event(tmp_path: Path) -> None:
    (tmp_path / "done.json").write_text('{"turns": [{"text": "Done."}]}')
    (tmp_path / "beamish.toml").write_text(
        '[store]\nurl = "sqlite:///journal.db"\n[memory]\nenabled = false\n[agents.clerk]\n'
        'instructions = "File."\nmodel = "scripted:done.json"\nisolation = "task"\n'
        "price = { input_per_mtok = 1.0, output_per_mtok = 5.0 }\n"
    )
    cfg = load_config(tmp_path / "beamish.toml")
    async with Company(cfg) as company:
        await company.pause("clerk")
        waiting = await company.submit("clerk", "File this.", "w1")
        paused = await company.node.result(waiting, timeout=20)
        assert paused.status == "paused"
        assert paused.reason is not None and paused.reason.kind == "paused"
        await asyncio.wait_for(_seen(company, "run.paused"), 20)  # the tree folds stored events in
        shown = {n.id: n for n in (await company.tree()).walk()}["clerk"]
        assert shown.state == "paused" and shown.last_exit == "paused"
        await company.resume("clerk")
        assert (await company.node.result(waiting, timeout=20)).status == "succeeded"
        await asyncio.wait_for(_seen(company, "run.finished"), 20)
        events = [e for _, e in await company.store.events(limit=5000)]
        assert [e.kind for e in events].count("agent.resumed") == 1
        assert "shutdown" not in str([e.data for e in events if e.kind.endswith("paused")])
        internal = [
            e
            for e in events
            if e.subject.startswith("actor#") or str(e.data.get("actor", "")).startswith("_")
        ]
        assert internal == []  # events name what an operator runs, not beamish's plumbing


async def _seen(company: Company, kind: str) -> None:
    async for event in company.events(replay=500):
        if event.kind == kind:
            return
