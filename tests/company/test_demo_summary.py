"""The demo's summary reads a real store and checks it against every record of the world: the tools'
effect log, the recorded agent versions and the memory file; every side-effect tool is covered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beamish._events import Event
from beamish.company._demo import DemoSettings, demo_config, effect_worlds, seed_facts, seed_memory
from beamish.company._summary import MemoryRecord, check_store, summarize
from beamish.journal import open_store
from beamish.upgrade._versions import Versions

pytestmark = pytest.mark.timeout(30)


def applied(key: str, tool: str = "post_update") -> dict[str, Any]:
    return {"key": key, "tool": tool, "status": "applied"}


async def record_run(store: Any, run_id: str, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
    """A succeeded run: a model step before each tool call ``(name, effect, args)`` and a last one."""
    run, _ = await store.create_run("agent", "task", run_id=run_id, status="running")
    seq = 0
    for name, effect, args in calls:
        await store.record_step(
            run.run_id, seq, run.epoch, kind="llm", phase="done", request={"turn": seq}, response={}
        )
        request = {"name": name, "args": args}
        for phase in ("intent", "done"):
            await store.record_step(
                run.run_id,
                seq + 1,
                run.epoch,
                kind="tool",
                phase=phase,
                request=request,
                name=name,
                effect=effect,
                idempotency_key=f"{run_id}:{seq + 1}",
                response={"text": "ok", "is_error": False} if phase == "done" else None,
            )
        seq += 2
    await store.record_step(
        run.run_id, seq, run.epoch, kind="llm", phase="done", request={"turn": seq}, response={}
    )
    await store.update_run(run.run_id, status="succeeded")


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
        for phase in ("intent", "done"):
            await store.record_step(
                run.run_id,
                1,
                run.epoch,
                kind="tool",
                phase=phase,
                request={"name": "post_update", "args": {"text": "hi"}},
                name="post_update",
                effect="once",
                idempotency_key="schedule:m:1:1",
                response={"text": "posted", "is_error": False} if phase == "done" else None,
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
        log.write_text(json.dumps(applied("schedule:m:1:1")) + "\n")
        events = [
            Event("child.exited", "cto", {"reason": {"v": 1, "kind": "killed"}}),
            Event("child.restarted", "cto", {}),
            Event("child.exited", "cto", {"reason": {"v": 1, "kind": "hung", "silent_for_s": 2.0}}),
            Event("child.exited", "accountant", {"reason": {"v": 1, "kind": "crashed", "error": "x"}}),
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
    assert data["runs_completed"] == 1 and data["runs_by_status"] == {"succeeded": 1}
    assert data["restarts"] == 1
    assert data["exit_reasons"] == {"crashed": 1, "hung": 1, "killed": 1}
    assert (data["lost_steps"], data["duplicate_effects"], data["effects_applied"]) == (0, 0, 1)
    assert summary.agrees and set(data["mismatches"].values()) == {0}
    assert data["unreadable_lines"] == {"effect_log": 0}
    assert (data["llm_calls_made"], data["llm_calls_replayed"], data["tool_calls_replayed"]) == (2, 1, 1)
    assert data["spend_usd"] == pytest.approx(0.03)
    assert (data["scheduled_fires"], data["scheduled_success_rate"]) == (4, 0.75)
    assert data["faults_seen"]["sigkill"] == 1 and data["faults_seen"]["hung_tool"] == 1
    assert data["faults_seen"]["tool_crash"] == 1


async def test_lines_without_a_key_or_torn_are_counted_not_dropped_and_do_not_crash(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    try:
        await record_run(store, "r", [("post_update", "once", {"text": "hi"})])
        log = tmp_path / "effects.jsonl"
        lines = [json.dumps(applied("r:1")), json.dumps({"tool": "post_update", "status": "applied"}), '{"to']
        log.write_text("\n".join(lines))
        summary = await summarize(store, log, events=[], duration_s=1.0, faults_injected={})
    finally:
        await store.close()
    assert summary.unreadable_lines == {"effect_log": 2}
    assert summary.mismatches["unreadable_line"] == 2 and not summary.agrees
    assert summary.problems == [
        "effects.jsonl line 2: no 'key'",
        "effects.jsonl line 3: not JSON (a torn or foreign write)",
    ]
    assert summary.lost_steps == 0


async def test_every_record_of_the_world_is_checked_through_a_real_store(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    seed_memory(memory)
    with memory.open("a") as f:  # what a memory server wrote for the steps below, and one stray fact
        f.write(
            json.dumps({"type": "entity", "name": "ideas", "entityType": "log", "observations": []}) + "\n"
        )
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    try:
        observation = {"observations": [{"entityName": "incidents", "contents": ["Health checks passed"]}]}
        proposal = {"agent": "lawyer", "changes": {}, "reason": "tighter reviews"}
        await record_run(store, "c", [("add_observations", "idempotent", observation)])
        await record_run(store, "u", [("propose_upgrade", "idempotent", proposal)])
        await record_run(store, "m", [("post_update", "once", {"text": "hi"})])
        await Versions(store).record(
            "cfo", {}, author="agent:improver", reason="r", state="proposed", idem_key="propose:x:9"
        )
        log = tmp_path / "effects.jsonl"
        log.write_text(json.dumps(applied("m:1")) + "\n" + json.dumps(applied("c:0", "send_invoice")) + "\n")
        check = await check_store(store, effect_log=log, memory=MemoryRecord(memory, seed_facts()))
    finally:
        await store.close()
    assert sorted(check.problems) == [
        "effect c:0 (send_invoice, effects.jsonl line 2) has the key of a llm step (llm)",
        "effect x:9 (propose_upgrade, version 1 of cfo by agent:improver) happened but the journal has "
        "no step for it",
        "memory holds entity 'ideas' that no journal step wrote",
        "step c:1 (add_observations) is done but memory has no observation 'Health checks passed' on "
        "'incidents'",
        "step u:1 (propose_upgrade) is done in the journal but never happened",
    ]
    assert check.applied == {"effect_log": 2, "versions": 1, "memory": 1}
    assert check.unreadable_lines == {"effect_log": 0, "memory": 0}


async def test_memory_writes_are_unchecked_without_the_memory_file(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    try:
        await record_run(store, "c", [("add_observations", "idempotent", {"observations": []})])
        check = await check_store(store, effect_log=None)
    finally:
        await store.close()
    assert [m.kind for m in check.mismatches] == ["unchecked_tool"]


def test_every_side_effect_tool_of_the_solo_company_has_a_record_that_keeps_its_effects(
    tmp_path: Path,
) -> None:
    worlds = effect_worlds(demo_config(tmp_path, DemoSettings()))
    assert None not in worlds.values(), worlds
    assert worlds == {
        "add_observations": "memory",
        "approve_spend": "effect_log",
        "create_entities": "memory",
        "create_relations": "memory",
        "create_task": "effect_log",
        "delete_entities": "memory",
        "delete_observations": "memory",
        "delete_relations": "memory",
        "post_update": "effect_log",
        "propose_upgrade": "versions",
        "record_transaction": "effect_log",
        "send_invoice": "effect_log",
    }


async def _summarize(store: Any, tmp_path: Path, budgets: dict[str, Any], company: Any) -> Any:
    return await summarize(
        store,
        tmp_path / "effects.jsonl",
        events=[],
        duration_s=1.0,
        faults_injected={},
        caps=(budgets, company),
    )


async def test_summarize_reports_spend_past_every_cap_from_the_ledger(tmp_path: Path) -> None:
    from beamish.agent._budget import Budget

    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    try:
        for run_id, costs in (("r1", (0.03, 0.04)), ("r2", (0.02,))):
            run, _ = await store.create_run("coo", "task board", run_id=run_id, status="running")
            for seq, cost in enumerate(costs):
                await store.record_step(
                    run.run_id, seq, run.epoch, kind="llm", phase="done", request={"t": seq}, cost_usd=cost
                )
        within = await _summarize(store, tmp_path, {"coo": Budget(per_run_usd=0.07, per_day_usd=0.09)}, None)
        past = await _summarize(store, tmp_path, {"coo": Budget(per_run_usd=0.05)}, Budget(total_usd=0.08))
    finally:
        await store.close()
    assert within.spend_past_cap == 0 and within.problems == []
    assert past.to_json()["spend_past_cap"] == pytest.approx(0.02 + 0.01)  # r1 by 0.02, the company by 0.01
    assert any("run r1" in p and "per_run_usd" in p for p in past.problems)
    assert any("the company in total" in p for p in past.problems)
