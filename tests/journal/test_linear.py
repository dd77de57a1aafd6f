"""Costs that must grow linearly with a run: request hashing and stored bytes; old rows still replay."""

from __future__ import annotations

from typing import Any

import pytest

from beamish.journal import RunJournal, StepResult, Store
from beamish.journal._divergence import summarize
from beamish.journal._payload import request_hash
from beamish.journal._reqhash import RequestHasher

pytestmark = pytest.mark.timeout(60)


def _reply(seq: int) -> StepResult:
    text = f"reply {seq}: " + "lorem ipsum " * 16
    return StepResult(value={"text": text}, messages=[{"role": "assistant", "content": text}], cost_usd=0.001)


async def _conversation(store: Store, run_id: str, steps: int) -> RunJournal:
    await store.create_run("ceo", "go", run_id=run_id)
    epoch = await store.claim_run(run_id, "node")
    journal = await RunJournal.open(store, run_id, epoch)
    messages: list[Any] = [{"role": "user", "content": "go"}]
    for seq in range(steps):

        async def perform(seq: int = seq) -> StepResult:
            return _reply(seq)

        request = {"model": "m", "system": "be brief", "messages": messages, "max_tokens": 100}
        result = await journal.model_step(seq, request, perform)
        messages = messages + result.messages
    return journal


async def _bytes_stored(store: Store, run_id: str) -> int:
    steps = await store.fetchone(
        "SELECT SUM(LENGTH(request) + LENGTH(COALESCE(response, '')) + LENGTH(COALESCE(delta, ''))) AS n "
        "FROM steps WHERE run_id = ?",
        [run_id],
    )
    snaps = await store.fetchone(
        "SELECT SUM(LENGTH(messages)) AS n FROM snapshots WHERE run_id = ?", [run_id]
    )
    bodies = await store.fetchone(
        "SELECT SUM(p.size) AS n FROM payloads p JOIN payload_refs r ON r.hash = p.hash WHERE r.run_id = ?",
        [run_id],
    )
    return sum(int(row["n"] or 0) for row in (steps, snaps, bodies) if row is not None)


async def test_hash_work_and_bytes_stored_grow_linearly_with_the_run(store: Store) -> None:
    short = await _conversation(store, "short", 100)
    long = await _conversation(store, "long", 400)
    hashed = long._hasher.hashed_bytes / short._hasher.hashed_bytes
    stored = await _bytes_stored(store, "long") / await _bytes_stored(store, "short")
    # 4x the steps: linear costs grow ~4x, quadratic ones ~16x
    print(f"400 vs 100 steps: hash work {hashed:.2f}x, bytes stored {stored:.2f}x")
    assert 3.0 < hashed < 5.0, hashed
    assert 3.0 < stored < 5.0, stored
    assert long.messages == (await store.messages("long"))[0]
    resumed = await RunJournal.open(store, "long", long.epoch, replay=False)
    assert resumed.messages == long.messages and resumed.next_seq == 400


def test_a_message_changed_in_place_after_hashing_changes_the_hash() -> None:
    hasher = RequestHasher()
    message: dict[str, Any] = {"role": "user", "content": "one"}
    first = hasher.hash({"messages": [message]})
    message["content"] = "two"
    assert hasher.hash({"messages": [message]}).hash == RequestHasher().hash({"messages": [message]}).hash
    assert hasher.hash({"messages": [message]}).hash != first.hash


def test_numbers_of_another_type_hash_differently_even_when_python_calls_them_equal() -> None:
    hasher = RequestHasher()
    hashes = {hasher.hash({"messages": [{"n": n}]}).hash for n in (1, 1.0, True)}
    assert len(hashes) == 3


def test_the_hash_does_not_depend_on_key_order_or_on_what_was_hashed_before() -> None:
    warm = RequestHasher()
    warm.hash({"messages": [{"a": 1, "b": 2}, "x"]})
    again = warm.hash({"messages": [{"b": 2, "a": 1}, "x", "y"]}).hash
    assert again == RequestHasher().hash({"messages": [{"a": 1, "b": 2}, "x", "y"]}).hash


async def test_a_difference_deep_in_a_long_conversation_is_named_by_its_index(store: Store) -> None:
    await _conversation(store, "r", 12)
    epoch = await store.claim_run("r", "node")
    journal = await RunJournal.open(store, "r", epoch)
    messages: list[Any] = [{"role": "user", "content": "go"}]
    for seq in range(8):
        if seq == 6:
            messages[3] = {"role": "assistant", "content": "rewritten"}

        async def perform(seq: int = seq) -> StepResult:
            return _reply(seq)

        request = {"model": "m", "system": "be brief", "messages": messages, "max_tokens": 100}
        result = await journal.model_step(seq, request, perform)
        messages = messages + result.messages
    [info] = journal.divergences
    assert info["seq"] == 6
    assert info["differs"] == ["messages: 7 → 7 items, first difference at index 3"]
    assert journal.replayed_calls == 6 and journal.model_calls == 2


async def test_steps_and_snapshots_written_before_version_2_still_replay(store: Store) -> None:
    """Rows as the first journal wrote them: bare sha256 request hashes, v1 summaries, whole-list
    snapshots. They replay without calling the model, and new steps extend the history."""
    await store.create_run("ceo", "go", run_id="old")
    epoch = await store.claim_run("old", "node")
    messages: list[Any] = [{"role": "user", "content": "go"}]
    history: list[Any] = []
    for seq in range(6):
        request = {"model": "m", "messages": messages}
        reply = _reply(seq)
        history += reply.messages
        await store.record_step(
            "old", seq, epoch, kind="llm", phase="done", request=summarize(request),
            request_hash=request_hash(request), response=reply.value, messages=reply.messages,
            snapshot=list(history) if seq == 3 else None,
        )  # fmt: skip
        messages = messages + reply.messages
    journal = await RunJournal.open(store, "old", epoch, snapshot_every=4)
    calls = 0
    messages = [{"role": "user", "content": "go"}]
    for seq in range(10):

        async def perform(seq: int = seq) -> StepResult:
            nonlocal calls
            calls += 1
            return _reply(seq)

        result = await journal.model_step(seq, {"model": "m", "messages": messages}, perform)
        messages = messages + result.messages
    assert (journal.replayed_calls, calls) == (6, 4)
    rebuilt, last = await store.messages("old")
    assert rebuilt == messages[1:] and last == 9
    resumed = await RunJournal.open(store, "old", epoch, replay=False, snapshot_every=4)
    assert resumed.messages == messages[1:]
    snaps = await store.fetchall(
        "SELECT seq, format, prev_seq FROM snapshots WHERE run_id = ? ORDER BY seq", ["old"]
    )
    assert snaps == [{"seq": 3, "format": 1, "prev_seq": None}, {"seq": 7, "format": 2, "prev_seq": 3}]


async def test_a_changed_request_against_a_version_1_row_is_still_a_divergence(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="old")
    epoch = await store.claim_run("old", "node")
    request = {"model": "m", "messages": [{"role": "user", "content": "go"}]}
    await store.record_step(
        "old", 0, epoch, kind="llm", phase="done", request=summarize(request),
        request_hash=request_hash(request), response={"text": "hi"},
    )  # fmt: skip
    journal = await RunJournal.open(store, "old", epoch)

    async def perform() -> StepResult:
        return _reply(0)

    changed = {"model": "m", "messages": [{"role": "user", "content": "stop"}]}
    await journal.model_step(0, changed, perform)
    [info] = journal.divergences
    assert info["differs"] == ["messages: 1 → 1 items, first difference at index 0"]


def test_version_2_hashes_are_pinned_so_recorded_runs_keep_replaying() -> None:
    """Changing how a version 2 hash is computed would turn every recorded step into a divergence:
    a new scheme needs a new version marker instead."""
    request = {
        "model": "m",
        "system": "s",
        "messages": [{"role": "user", "content": "hi", "n": 1.5}, "x"],
        "max_tokens": 10,
        "body": {"input": [True, None]},
    }
    assert RequestHasher().hash(request).hash == (
        "2:d0cff0fb77acecda9ff834359a23c53b4d823fafab55c7f7c7df9ce27128144b"
    )
    assert RequestHasher().hash({"model": "m", "turn": 3}).hash == (
        "2:a2dbca6af6412682d4577106dda5915e1e5b017293b28ab7c79404d56eb4d5d2"
    )


def test_a_request_that_is_not_json_safe_is_refused_by_name() -> None:
    from beamish import SpecError

    with pytest.raises(SpecError, match="request must be JSON-safe"):
        RequestHasher().hash({"messages": [{"when": object()}]})
