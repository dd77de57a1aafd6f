"""The effect check against hand-made journals and world records: every mismatch kind, every line
that cannot be read, every side-effect tool of the solo company covered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamish.company._effects import (
    MISMATCH_KINDS,
    Effect,
    EffectCheck,
    JournalStep,
    Mismatch,
    check_coverage,
    check_gaps,
    check_keyed,
    read_effect_log,
    version_effects,
)
from beamish.company._memory_check import check_memory, read_memory_facts

pytestmark = pytest.mark.timeout(30)

TOOLS = {"post_update", "record_transaction", "send_invoice", "propose_upgrade"}


def llm(run: str, seq: int) -> JournalStep:
    return JournalStep(run, seq, "llm", "done", "scripted:marketing.json")


def tool(
    run: str,
    seq: int,
    name: str = "post_update",
    *,
    phase: str = "done",
    effect: str | None = "once",
    key: str | None = None,
    args: Any = None,
    is_error: bool = False,
) -> JournalStep:
    idem = key if key is not None else (f"{run}:{seq}" if effect in ("once", "idempotent") else None)
    return JournalStep(run, seq, "tool", phase, name, effect, idem, args, is_error)


def applied(key: str, name: str = "post_update", status: str = "applied") -> Effect:
    return Effect(key, name, status, "effects.jsonl line 1")


def kinds(found: list[Mismatch]) -> list[str]:
    return [m.kind for m in found]


# -- keyed effects (the effect log, the recorded versions) ------------------------------------------


def test_a_clean_journal_has_no_mismatch() -> None:
    steps = [llm("r", 0), tool("r", 1), llm("r", 2)]
    assert check_keyed([applied("r:1")], steps, {"r": "succeeded"}, TOOLS) == []
    assert check_gaps(steps, {"r": "succeeded"}) == []


def test_an_effect_applied_twice_is_a_duplicate_counted_once_per_extra_application() -> None:
    found = check_keyed(
        [applied("r:1"), applied("r:1"), applied("r:1")],
        [llm("r", 0), tool("r", 1)],
        {"r": "succeeded"},
        TOOLS,
    )
    assert found == [Mismatch("duplicate_effect", "effect r:1 was applied 3 times", 2)]
    assert EffectCheck(found).duplicate_effects == 2


def test_a_deduplicated_retry_of_an_idempotent_tool_is_not_a_duplicate() -> None:
    effects = [applied("r:1", "record_transaction"), applied("r:1", "record_transaction", "deduplicated")]
    steps = [llm("r", 0), tool("r", 1, "record_transaction", effect="idempotent")]
    assert check_keyed(effects, steps, {"r": "succeeded"}, TOOLS) == []


def test_an_effect_the_journal_has_no_step_for_is_a_missing_step() -> None:
    found = check_keyed([applied("r:5")], [llm("r", 0)], {"r": "running"}, TOOLS)
    assert kinds(found) == ["missing_step"]
    assert (
        "effect r:5 (post_update, effects.jsonl line 1) happened but the journal has no step"
        in found[0].detail
    )


def test_an_effect_under_a_key_the_journal_replaced_after_a_divergence_is_a_missing_step() -> None:
    steps = [llm("r", 0), tool("r", 1, key="r:1:1")]
    found = check_keyed([applied("r:1"), applied("r:1:1")], steps, {"r": "succeeded"}, TOOLS)
    assert kinds(found) == ["missing_step"]
    assert "the journal's step there has the key r:1:1" in found[0].detail


def test_an_effect_whose_step_is_open_is_unfinished_only_once_its_run_is_finished() -> None:
    steps = [llm("r", 0), tool("r", 1, phase="intent")]
    assert check_keyed([applied("r:1")], steps, {"r": "running"}, TOOLS) == []
    found = check_keyed([applied("r:1")], steps, {"r": "failed"}, TOOLS)
    assert kinds(found) == ["unfinished_step"]
    assert "still 'intent' in a finished run" in found[0].detail


def test_a_done_side_effect_step_that_never_happened_is_a_phantom_effect() -> None:
    found = check_keyed([], [llm("r", 0), tool("r", 1)], {"r": "succeeded"}, TOOLS)
    assert found == [
        Mismatch("phantom_effect", "step r:1 (post_update) is done in the journal but never happened")
    ]


def test_a_step_whose_tool_failed_owes_no_effect() -> None:
    steps = [llm("r", 0), tool("r", 1, is_error=True)]
    assert check_keyed([], steps, {"r": "succeeded"}, TOOLS) == []


def test_a_step_of_a_tool_no_record_keeps_owes_nothing_to_this_record() -> None:
    steps = [llm("r", 0), tool("r", 1, "add_observations", effect="idempotent")]
    assert check_keyed([], steps, {"r": "succeeded"}, TOOLS) == []


def test_an_effect_logged_under_another_tools_key_is_the_wrong_tool_and_that_step_a_phantom() -> None:
    steps = [llm("r", 0), tool("r", 1, "send_invoice")]
    found = check_keyed([applied("r:1", "post_update")], steps, {"r": "succeeded"}, TOOLS)
    assert kinds(found) == ["wrong_tool", "phantom_effect"]
    assert "has the key of a step of another tool, send_invoice" in found[0].detail


def test_an_effect_logged_under_a_model_steps_key_is_the_wrong_tool() -> None:
    found = check_keyed(
        [applied("r:0")], [llm("r", 0), tool("r", 1, effect="read")], {"r": "succeeded"}, TOOLS
    )
    assert kinds(found) == ["wrong_tool"]
    assert "has the key of a llm step (scripted:marketing.json)" in found[0].detail


def test_a_gap_in_a_succeeded_runs_steps_counts_each_missing_step() -> None:
    found = check_gaps(
        [llm("r", 0), llm("r", 3), llm("q", 0), llm("q", 5)], {"r": "succeeded", "q": "paused"}
    )
    assert found == [Mismatch("step_gap", "run r has no steps [1, 2]", 2)]
    assert EffectCheck(found).lost_steps == 2


def test_a_proposed_version_is_the_effect_of_the_step_whose_key_it_carries() -> None:
    rows = [
        {"agent": "lawyer", "version": 2, "author": "agent:improver", "idem_key": "propose:u:1"},
        {"agent": "lawyer", "version": 1, "author": "config", "idem_key": None},
    ]
    versions = version_effects(rows)
    assert versions == [Effect("u:1", "propose_upgrade", "applied", "version 2 of lawyer by agent:improver")]
    steps = [llm("u", 0), tool("u", 1, "propose_upgrade", effect="idempotent"), llm("u", 2)]
    assert check_keyed(versions, steps, {"u": "succeeded"}, TOOLS) == []
    assert kinds(check_keyed([], steps, {"u": "succeeded"}, TOOLS)) == ["phantom_effect"]
    assert kinds(check_keyed(versions, [llm("u", 0)], {"u": "succeeded"}, TOOLS)) == ["missing_step"]


def test_a_side_effect_tool_no_record_keeps_is_reported_unchecked() -> None:
    found = check_coverage({"post_update": "effect_log", "mystery": None})
    assert kinds(found) == ["unchecked_tool"]
    assert "tool mystery has side effects that no record keeps" in found[0].detail


def test_counts_list_every_kind_with_zeros() -> None:
    counts = EffectCheck([Mismatch("wrong_tool", "x"), Mismatch("step_gap", "y", 3)]).counts()
    assert list(counts) == list(MISMATCH_KINDS)
    assert counts["wrong_tool"] == 1 and counts["step_gap"] == 3 and counts["missing_step"] == 0


# -- the effect log's lines -------------------------------------------------------------------------


GOOD = b'{"key": "r:1", "tool": "post_update", "status": "applied"}'


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"key": "r:2", "tool": "post_up', "not JSON (a torn or foreign write)"),
        (b"\xff\xfe not text", "not JSON (a torn or foreign write)"),
        (b'["r:2", "post_update"]', "not an object but list"),
        (b'{"tool": "post_update", "status": "applied"}', "no 'key'"),
        (b'{"key": 7, "tool": "post_update", "status": "applied"}', "no 'key'"),
        (b'{"key": "", "tool": "post_update", "status": "applied"}', "no 'key'"),
        (b'{"key": "r:2", "status": "applied"}', "no 'tool'"),
        (b'{"key": "r:2", "tool": "post_update"}', "status None is neither 'applied' nor 'deduplicated'"),
        (b'{"key": "r:2", "tool": "post_update", "status": "done"}', "status 'done' is neither"),
    ],
)
def test_each_unreadable_effect_log_line_is_counted_with_its_line_number(
    tmp_path: Path, line: bytes, why: str
) -> None:
    log = tmp_path / "effects.jsonl"
    log.write_bytes(GOOD + b"\n" + line + b"\n" + GOOD.replace(b"r:1", b"r:3") + b"\n")
    effects, unreadable = read_effect_log(log)
    assert [e.key for e in effects] == ["r:1", "r:3"]
    assert len(unreadable) == 1 and unreadable[0].kind == "unreadable_line"
    assert unreadable[0].detail.startswith(f"effects.jsonl line 2: {why}")


def test_a_torn_last_line_is_counted_too(tmp_path: Path) -> None:
    log = tmp_path / "effects.jsonl"
    log.write_bytes(GOOD + b"\n" + b'{"key": "r:2", "to')
    effects, unreadable = read_effect_log(log)
    assert len(effects) == 1
    assert [m.detail for m in unreadable] == ["effects.jsonl line 2: not JSON (a torn or foreign write)"]


def test_a_missing_effect_log_is_no_effect_and_nothing_unreadable(tmp_path: Path) -> None:
    assert read_effect_log(tmp_path / "none.jsonl") == ([], [])


# -- memory writes against the memory file ----------------------------------------------------------

BEFORE = {("entity", "incidents"), ("entity", "legal"), ("observation", "legal", "NDA signed")}


def observe(run: str, seq: int, entity: str, *texts: str, phase: str = "done") -> JournalStep:
    args = {"observations": [{"entityName": entity, "contents": list(texts)}]}
    return tool(run, seq, "add_observations", phase=phase, effect="idempotent", args=args)


def test_acknowledged_memory_writes_that_hold_in_the_file_agree() -> None:
    after = BEFORE | {("observation", "incidents", "Health checks passed")}
    assert (
        check_memory(BEFORE, after, [llm("c", 0), observe("c", 1, "incidents", "Health checks passed")]) == []
    )


def test_an_acknowledged_observation_missing_from_the_file_is_a_phantom_effect() -> None:
    found = check_memory(BEFORE, BEFORE, [observe("c", 1, "incidents", "Health checks passed")])
    assert found == [
        Mismatch(
            "phantom_effect",
            "step c:1 (add_observations) is done but memory has no "
            "observation 'Health checks passed' on 'incidents'",
        )
    ]


def test_a_fact_in_the_file_that_no_step_wrote_is_a_missing_step() -> None:
    after = BEFORE | {("observation", "legal", "Signed the Acme MSA")}
    found = check_memory(BEFORE, after, [observe("c", 1, "incidents")])
    assert kinds(found) == ["missing_step"]
    assert (
        found[0].detail
        == "memory holds observation 'Signed the Acme MSA' on 'legal' that no journal step wrote"
    )


def test_a_write_interrupted_after_the_server_applied_it_still_accounts_for_its_facts() -> None:
    after = BEFORE | {("observation", "incidents", "Disk full")}
    assert check_memory(BEFORE, after, [observe("c", 1, "incidents", "Disk full", phase="intent")]) == []


def test_creating_an_entity_that_exists_owes_only_the_entity() -> None:
    args = {"entities": [{"name": "legal", "entityType": "team", "observations": ["new clause"]}]}
    steps = [tool("c", 1, "create_entities", effect="idempotent", args=args)]
    assert check_memory(BEFORE, BEFORE, steps) == []


def test_a_deleted_fact_is_owed_by_no_earlier_write_and_must_be_gone() -> None:
    deletion = {"deletions": [{"entityName": "legal", "observations": ["NDA signed"]}]}
    steps = [
        observe("c", 1, "legal", "NDA signed"),
        tool("c", 2, "delete_observations", effect="idempotent", args=deletion),
    ]
    gone = BEFORE - {("observation", "legal", "NDA signed")}
    assert check_memory(BEFORE, gone, steps[1:]) == []
    assert check_memory(BEFORE, gone, steps) == []
    found = check_memory(BEFORE, BEFORE, steps[1:])
    assert kinds(found) == ["phantom_effect"]
    assert "is done but memory still has observation 'NDA signed' on 'legal'" in found[0].detail


def test_a_relation_written_and_one_not_written() -> None:
    rel = {"relations": [{"from": "legal", "to": "incidents", "relationType": "reports"}]}
    steps = [tool("c", 1, "create_relations", effect="idempotent", args=rel)]
    fact = ("relation", "legal", "reports", "incidents")
    assert check_memory(BEFORE, BEFORE | {fact}, steps) == []
    assert kinds(check_memory(BEFORE, BEFORE, steps)) == ["phantom_effect"]
    assert kinds(check_memory(BEFORE, BEFORE | {fact}, [])) == ["missing_step"]


def test_a_failed_memory_write_owes_nothing() -> None:
    step = tool("c", 1, "add_observations", effect="idempotent", is_error=True, args={"observations": []})
    assert check_memory(BEFORE, BEFORE, [step]) == []


def test_the_memory_files_unreadable_lines_are_counted(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    memory.write_text(
        '{"type":"entity","name":"legal","entityType":"team","observations":["NDA signed"]}\n'
        '{"type":"entity","name":"half-written\n'
        '{"type":"relation","from":"legal"}\n'
    )
    facts, unreadable = read_memory_facts(memory)
    assert facts == {("entity", "legal"), ("observation", "legal", "NDA signed")}
    assert [m.kind for m in unreadable] == ["unreadable_line", "unreadable_line"]
    assert unreadable[0].detail.startswith("memory.jsonl line 2: not JSON")
    assert unreadable[1].detail.startswith("memory.jsonl line 3:")
