"""The demo's summary checks the journal against the tools' effect log; lost or doubled effects show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beamish._events import Event
from beamish.company._summary import check_effects, summarize
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(30)


def step(
    run: str, seq: int, kind: str = "tool", phase: str = "done", effect: str | None = "once"
) -> dict[str, Any]:
    return {
        "run_id": run,
        "seq": seq,
        "kind": kind,
        "phase": phase,
        "name": "post_update",
        "effect": effect,
        "idem_key": f"{run}:{seq}",
    }


def applied(key: str) -> dict[str, Any]:
    return {"key": key, "tool": "post_update", "status": "applied"}


def test_a_clean_journal_has_no_lost_steps_and_no_duplicates() -> None:
    steps = [step("r", 0, "llm", effect=None), step("r", 1), step("r", 2, "llm", effect=None)]
    assert check_effects([applied("r:1")], steps, {"r": "succeeded"}) == (0, 0, [])


def test_an_effect_applied_twice_is_a_duplicate() -> None:
    lost, dup, problems = check_effects(
        [applied("r:1"), applied("r:1")], [step("r", 0, "llm", effect=None), step("r", 1)], {"r": "succeeded"}
    )
    assert (lost, dup) == (0, 1)
    assert problems == ["effect r:1 was applied 2 times"]


def test_a_deduplicated_retry_of_an_idempotent_tool_is_not_a_duplicate() -> None:
    effects = [applied("r:1"), {"key": "r:1", "tool": "record_transaction", "status": "deduplicated"}]
    assert check_effects(
        effects, [step("r", 0, "llm", effect=None), step("r", 1, effect="idempotent")], {"r": "succeeded"}
    )[:2] == (0, 0)


def test_an_effect_the_journal_has_no_step_for_is_lost() -> None:
    lost, _, problems = check_effects([applied("r:5")], [step("r", 0, "llm", effect=None)], {"r": "running"})
    assert lost == 1
    assert problems == ["effect r:5 happened but the journal has no step for it"]


def test_an_open_intent_is_lost_only_once_its_run_is_finished() -> None:
    steps = [step("r", 0, "llm", effect=None), step("r", 1, phase="intent")]
    assert check_effects([applied("r:1")], steps, {"r": "running"})[0] == 0
    assert check_effects([applied("r:1")], steps, {"r": "failed"})[0] == 1


def test_a_done_side_effect_step_that_never_happened_is_lost() -> None:
    lost, _, problems = check_effects(
        [], [step("r", 0, "llm", effect=None), step("r", 1)], {"r": "succeeded"}
    )
    assert lost == 1
    assert problems == ["step r:1 (post_update) is done in the journal but never happened"]


def test_a_gap_in_a_succeeded_runs_steps_counts_each_missing_step() -> None:
    steps = [step("r", 0, "llm", effect=None), step("r", 3, "llm", effect=None)]
    lost, _, problems = check_effects([], steps, {"r": "succeeded"})
    assert lost == 2
    assert problems == ["run r has no steps [1, 2]"]


async def test_summarize_reads_runs_steps_spend_and_events_from_a_real_store(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    try:
        run, _ = await store.create_run(
            "marketing", "Post today's update", run_id="schedule:m:1", status="running"
        )
        await store.record_step(
            run.run_id,
            0,
            run.epoch,
            kind="llm",
            phase="done",
            request={"turn": 0},
            response={"text": ""},
            tokens_in=100,
            tokens_out=10,
            cost_usd=0.01,
        )
        await store.record_step(
            run.run_id,
            1,
            run.epoch,
            kind="tool",
            phase="intent",
            request={"text": "hi"},
            name="post_update",
            effect="once",
        )
        await store.record_step(
            run.run_id,
            1,
            run.epoch,
            kind="tool",
            phase="done",
            request={"text": "hi"},
            name="post_update",
            effect="once",
            response="posted",
        )
        await store.record_step(
            run.run_id,
            2,
            run.epoch,
            kind="llm",
            phase="done",
            request={"turn": 1},
            response={"text": "done"},
            cost_usd=0.02,
        )
        await store.update_run(run.run_id, status="succeeded")
        log = tmp_path / "effects.jsonl"
        log.write_text(json.dumps(applied("schedule:m:1:1")) + "\n" + '{"torn": ')
        events = [
            Event("child.exited", "cto", {"reason": {"v": 1, "kind": "killed"}}),
            Event("child.restarted", "cto", {}),
            Event("child.exited", "cto", {"reason": {"v": 1, "kind": "hung", "silent_for_s": 2.0}}),
            Event("child.exited", "cto", {"reason": {"v": 1, "kind": "shutdown"}}),
            Event(
                "step.replayed", run.run_id, {"run_id": run.run_id, "count": 2, "from_seq": 0, "to_seq": 1}
            ),
        ]
        summary = await summarize(
            store, log, events=events, duration_s=20.0, faults_injected={"sigkill": 1}, scheduled=(4, 0.75)
        )
    finally:
        await store.close()
    data = summary.to_json()
    assert data["runs_completed"] == 1
    assert data["restarts"] == 1
    assert data["exit_reasons"] == {"hung": 1, "killed": 1}
    assert (data["lost_steps"], data["duplicate_effects"], data["effects_applied"]) == (0, 0, 1)
    assert (data["llm_calls_made"], data["llm_calls_replayed"], data["tool_calls_replayed"]) == (2, 1, 1)
    assert data["spend_usd"] == pytest.approx(0.03)
    assert (data["scheduled_fires"], data["scheduled_success_rate"]) == (4, 0.75)
    assert data["faults_seen"]["sigkill"] == 1 and data["faults_seen"]["hung_tool"] == 1
