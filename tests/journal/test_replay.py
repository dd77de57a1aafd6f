"""RunJournal on every backend: replay without re-paying, divergence, two-phase effects, fencing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamish import ToolError
from beamish.errors import Fenced, UnknownOutcome
from beamish.journal import RunJournal, StepResult, Store
from beamish.testing import wait_for

pytestmark = pytest.mark.timeout(30)


class FakeModel:
    """Counts calls; answers with the turn number and a cost."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> StepResult:
        self.calls += 1
        text = f"answer {self.calls}"
        return StepResult(
            value={"text": text},
            messages=[{"role": "assistant", "content": text}],
            tokens_in=100,
            tokens_out=20,
            cost_usd=0.01,
        )


async def _run(store: Store, run_id: str, turns: int, model: FakeModel, *, prompt: str = "go") -> RunJournal:
    epoch = await store.claim_run(run_id, "node")
    j = await RunJournal.open(store, run_id, epoch, snapshot_every=4)
    messages: list[Any] = [{"role": "user", "content": prompt}]
    for seq in range(turns):
        result = await j.model_step(seq, {"model": "m", "messages": messages}, model)
        messages = messages + result.messages
    await j.flush()
    return j


async def test_a_restarted_run_replays_model_calls_without_calling_the_model(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    model = FakeModel()
    first = await _run(store, "r", 5, model)
    assert (first.model_calls, first.replayed_calls, model.calls) == (5, 0, 5)
    second = await _run(store, "r", 7, model)
    assert (second.model_calls, second.replayed_calls, model.calls) == (2, 5, 7)
    run = await store.get_run("r")
    assert run.spend_usd == pytest.approx(0.07)
    replayed = [e.data for _, e in await store.events(kinds=["step.replayed"])]
    assert replayed == [{"run_id": "r", "count": 5, "from_seq": 0, "to_seq": 4}]


async def test_history_resumes_from_the_latest_snapshot(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    j = await _run(store, "r", 10, FakeModel())
    resumed = await RunJournal.open(store, "r", j.epoch, replay=False, snapshot_every=4)
    assert resumed.next_seq == 10
    assert resumed.messages == j.messages
    assert len(resumed.messages) == 10
    assert resumed.recorded(3) is None and resumed.recorded(8) is not None  # snapshot at step 7


async def test_a_changed_request_is_reported_as_divergence_and_the_run_goes_live(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    model = FakeModel()
    await _run(store, "r", 4, model)
    again = await _run(store, "r", 4, model, prompt="something else")
    assert (again.replayed_calls, again.model_calls) == (0, 4)
    [(_, event)] = await store.events(kinds=["step.divergence"])
    assert event.subject == "r" and event.data["seq"] == 0
    assert event.data["differs"] == ["messages: 1 → 1 items, first difference at index 0"]
    assert event.data["discarded_from"] == 0
    steps = await store.steps("r")
    assert [s.seq for s in steps] == [0, 1, 2, 3]
    assert (await store.get_run("r")).spend_usd == pytest.approx(0.08)  # paid twice, counted twice


class Effects:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    async def __call__(self, key: str) -> StepResult:
        self.calls.append(key)
        if self.fail:
            raise RuntimeError("api down")
        return StepResult(value=f"posted {key}", messages=[{"role": "tool", "content": "ok"}])


async def _crash_after_intent(store: Store, effect: str) -> int:
    """A worker that committed the intent of step 0 and died before the effect's outcome."""
    await store.create_run("mkt", "post", run_id="r")
    epoch = await store.claim_run("r", "dead-node")
    await store.record_step(
        "r",
        0,
        epoch,
        kind="tool",
        phase="intent",
        name="post",
        request={"name": "post", "args": {"text": "hi"}},
        effect=effect,
    )
    return await store.claim_run("r", "new-node")


async def test_an_effect_commits_intent_before_and_done_after(store: Store) -> None:
    await store.create_run("mkt", "post", run_id="r")
    epoch = await store.claim_run("r", "n")
    j = await RunJournal.open(store, "r", epoch)
    phases: list[str] = []

    async def perform(key: str) -> str:
        phases.append((await store.steps("r"))[0].phase)
        return "posted"

    result = await j.effect_step(0, "post", {"text": "hi"}, "once", perform)
    assert result.value == "posted" and phases == ["intent"]
    [step] = await store.steps("r")
    assert (step.phase, step.idempotency_key, step.response) == ("done", "r:0", "posted")
    replay = await RunJournal.open(store, "r", epoch)
    again = await replay.effect_step(0, "post", {"text": "hi"}, "once", perform)
    assert again.replayed and phases == ["intent"]


@pytest.mark.parametrize("effect", ["read", "idempotent"])
async def test_an_unfinished_read_or_idempotent_effect_runs_again_with_the_same_key(
    store: Store, effect: str
) -> None:
    epoch = await _crash_after_intent(store, effect)
    tool = Effects()
    j = await RunJournal.open(store, "r", epoch)
    result = await j.effect_step(0, "post", {"text": "hi"}, effect, tool)
    assert tool.calls == ["r:0"] and result.value == "posted r:0"
    assert (await store.steps("r"))[0].phase == "done"


async def test_an_unfinished_once_effect_is_settled_by_reconcile(store: Store) -> None:
    epoch = await _crash_after_intent(store, "once")
    tool = Effects()
    j = await RunJournal.open(store, "r", epoch)
    result = await j.effect_step(
        0, "post", {"text": "hi"}, "once", tool, reconcile=lambda key: f"found {key}"
    )
    assert tool.calls == [] and result.value == "found r:0"
    assert (await store.steps("r"))[0].phase == "done"


async def test_a_once_effect_that_reconcile_says_did_not_happen_runs_now(store: Store) -> None:
    epoch = await _crash_after_intent(store, "once")
    tool = Effects()

    async def nothing(key: str) -> None:
        return None

    j = await RunJournal.open(store, "r", epoch)
    await j.effect_step(0, "post", {"text": "hi"}, "once", tool, reconcile=nothing)
    assert tool.calls == ["r:0"]


async def test_an_unsettled_once_effect_parks_the_run_as_needs_attention(store: Store) -> None:
    epoch = await _crash_after_intent(store, "once")
    tool = Effects()
    j = await RunJournal.open(store, "r", epoch)
    with pytest.raises(UnknownOutcome, match="needs_attention"):
        await j.effect_step(0, "post", {"text": "hi"}, "once", tool)
    assert tool.calls == []
    assert (await store.get_run("r")).status == "needs_attention"
    assert (await store.steps("r"))[0].phase == "unknown"
    [(_, event)] = await store.events(kinds=["run.needs_attention"])
    assert event.data["tool"] == "post"


async def test_a_failed_effect_is_recorded_and_replayed_as_a_tool_error(store: Store) -> None:
    await store.create_run("mkt", "post", run_id="r")
    epoch = await store.claim_run("r", "n")
    j = await RunJournal.open(store, "r", epoch)
    with pytest.raises(RuntimeError, match="api down"):
        await j.effect_step(0, "post", {}, "idempotent", Effects(fail=True))
    again = await RunJournal.open(store, "r", epoch)
    tool = Effects()
    with pytest.raises(ToolError, match="api down"):
        await again.effect_step(0, "post", {}, "idempotent", tool)
    assert tool.calls == []


async def test_the_older_of_two_writers_is_fenced_and_writes_nothing(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    old_epoch = await store.claim_run("r", "node-a")
    old = await RunJournal.open(store, "r", old_epoch)
    await old.model_step(0, {"q": 0}, FakeModel())
    new_epoch = await store.claim_run("r", "node-b")
    new = await RunJournal.open(store, "r", new_epoch)
    assert (await new.model_step(0, {"q": 0}, FakeModel())).replayed
    with pytest.raises(Fenced, match=f"epoch {old_epoch} refused"):
        await old.model_step(1, {"q": 1}, FakeModel())
    with pytest.raises(Fenced):
        await old.effect_step(1, "post", {}, "once", Effects())
    with pytest.raises(Fenced):
        await store.update_run("r", status="succeeded", epoch=old_epoch)
    assert [s.seq for s in await store.steps("r")] == [0]
    await new.model_step(1, {"q": 1}, FakeModel())
    assert [(s.seq, s.epoch) for s in await store.steps("r")] == [(0, old_epoch), (1, new_epoch)]
    assert (await store.get_run("r")).status == "queued"


async def test_a_claim_racing_a_writer_on_another_node_is_a_clean_cut(store_url: str) -> None:
    """Node A appends as fast as it can; node B (its own store, its own connections) claims the run
    mid-stream. Every write A got acknowledged lies before B's first step; after it A only gets Fenced."""
    from beamish.journal import open_store

    node_a, node_b = await open_store(store_url), await open_store(store_url)
    task: asyncio.Future[None] | None = None
    try:
        await node_a.create_run("ceo", "go", run_id="r")
        epoch_a = await node_a.claim_run("r", "node-a")
        acked: list[int] = []
        fenced = asyncio.Event()

        async def writer_a() -> None:
            seq = 0
            while True:
                try:
                    await node_a.record_step("r", seq, epoch_a, kind="llm", phase="done", request={"s": seq})
                except Fenced:
                    fenced.set()
                    return
                acked.append(seq)
                seq += 1

        task = asyncio.ensure_future(writer_a())
        await wait_for(lambda: len(acked) >= 5, timeout=20, what="node A's first writes")
        epoch_b = await node_b.claim_run("r", "node-b")
        row = await node_b.fetchone("SELECT MAX(seq) AS m FROM steps WHERE run_id = ?", ["r"])
        assert row is not None
        first_b = int(row["m"]) + 1
        await node_b.record_step("r", first_b, epoch_b, kind="llm", phase="done", request={"s": first_b})
        await asyncio.wait_for(task, 20)
        assert fenced.is_set() and max(acked) < first_b
        steps = await node_b.steps("r")
        assert [s.seq for s in steps] == list(range(first_b + 1))
        assert {s.epoch for s in steps if s.seq < first_b} == {epoch_a}
    finally:
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await node_a.close()
        await node_b.close()


async def test_a_tool_called_with_other_arguments_diverges_and_runs_live(store: Store) -> None:
    await store.create_run("mkt", "post", run_id="r")
    epoch = await store.claim_run("r", "n")
    tool = Effects()
    first = await RunJournal.open(store, "r", epoch)
    await first.effect_step(0, "post", {"text": "hello"}, "idempotent", tool)
    again = await RunJournal.open(store, "r", epoch)
    result = await again.effect_step(0, "post", {"text": "goodbye"}, "idempotent", tool)
    # the discarded timeline used r:0 for another request: the new one gets a fresh key
    assert not result.replayed and tool.calls == ["r:0", "r:0:1"]
    [info] = again.divergences
    assert info["differs"] == ['args: {"text":"hello"} → {"text":"goodbye"}']
    [step] = await store.steps("r")
    assert step.request == {"name": "post", "args": {"text": "goodbye"}}
    assert step.idempotency_key == "r:0:1"
    later = await RunJournal.open(store, "r", epoch)
    assert later.generation == 1 and later.key(5) == "r:5:1"
    assert (await later.effect_step(0, "post", {"text": "goodbye"}, "idempotent", tool)).replayed


async def test_a_read_tool_is_recorded_in_one_phase(store: Store) -> None:
    await store.create_run("ceo", "look", run_id="r")
    epoch = await store.claim_run("r", "n")
    j = await RunJournal.open(store, "r", epoch)
    seen: list[int] = []

    async def look(key: str) -> str:
        seen.append(len(await store.steps("r")))
        return "found"

    await j.effect_step(0, "search", {"q": "x"}, "read", look)
    assert seen == [0]
    [step] = await store.steps("r")
    assert (step.phase, step.effect, step.response) == ("done", "read", "found")
    assert j.model_calls == 0  # tools are not model calls


async def test_after_a_divergence_the_history_is_the_new_timeline(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    model = FakeModel()
    first = await _run(store, "r", 9, model)  # snapshots after steps 3 and 7
    epoch = first.epoch
    j = await RunJournal.open(store, "r", epoch, snapshot_every=4)
    messages: list[Any] = [{"role": "user", "content": "go"}]
    for seq in range(5):
        request = {"model": "m", "messages": messages} if seq < 5 else {}
        messages = messages + (await j.model_step(seq, request, model)).messages
    changed = await j.model_step(
        5, {"model": "m", "messages": [*messages, {"role": "user", "content": "new"}]}, model
    )
    assert not changed.replayed
    history, last = await store.messages("r")
    assert last == 5 and history == j.messages
    assert history[:5] == first.messages[:5] and history[5] == changed.messages[0]
    snaps = await store.fetchall("SELECT seq FROM snapshots WHERE run_id = ? ORDER BY seq", ["r"])
    assert [s["seq"] for s in snaps] == [3]
    resumed = await RunJournal.open(store, "r", epoch, replay=False)
    assert resumed.messages == history and resumed.next_seq == 6


async def test_a_run_is_claimed_only_while_the_agents_lease_is_held(store: Store) -> None:
    await store.create_run("ceo", "go", run_id="r")
    lease = await store.acquire_lease("unit:ceo", "node-a", ttl_s=10)
    assert lease is not None
    epoch = await store.claim_run("r", "node-a", lease=lease)
    assert epoch == 1
    store.clock.advance(11)  # type: ignore[attr-defined]
    taken = await store.acquire_lease("unit:ceo", "node-b", ttl_s=10)
    assert taken is not None and taken.epoch == 2
    with pytest.raises(Fenced, match="no longer held"):
        await store.claim_run("r", "node-a", lease=lease)
    assert await store.claim_run("r", "node-b", lease=taken) == 2


async def test_an_effect_is_performed_only_while_the_agents_lease_holds(store: Store, clock: Any) -> None:
    """On a cluster the lease is read after the intent: a node that lost it leaves the effect to the
    next holder (Fenced, nothing performed), whose reconcile then finds it was never done."""
    await store.create_run("ceo", "go", run_id="r")
    lease = await store.acquire_lease("agent:ceo", "node-a", ttl_s=10)
    assert lease is not None
    epoch = await store.claim_run("r", "node-a", lease=lease)
    j = await RunJournal.open(store, "r", epoch)
    j.lease = lease
    performed: list[str] = []

    async def perform(key: str) -> str:
        performed.append(key)
        return "posted"

    assert (await j.effect_step(0, "post", {"n": 0}, "once", perform)).value == "posted"
    assert performed == ["r:0"]
    clock.advance(11)  # node-a was cut off past its lease; node-b takes the agent
    taken = await store.acquire_lease("agent:ceo", "node-b", ttl_s=10)
    assert taken is not None and taken.epoch == lease.epoch + 1
    with pytest.raises(Fenced, match="no longer held here"):
        await j.effect_step(1, "post", {"n": 1}, "once", perform)
    assert performed == ["r:0"]  # the stale holder wrote its intent but did not act
    epoch = await store.claim_run("r", "node-b", lease=taken)
    resumed = await RunJournal.open(store, "r", epoch)
    resumed.lease = taken
    reconciled: list[str] = []

    def never_done(key: str) -> None:
        reconciled.append(key)

    assert (await resumed.effect_step(1, "post", {"n": 1}, "once", perform, never_done)).value == "posted"
    assert (reconciled, performed) == (["r:1"], ["r:0", "r:1"])


async def test_a_slow_answer_about_the_lease_is_asked_again(store: Store, monkeypatch: Any) -> None:
    await store.create_run("ceo", "go", run_id="r")
    lease = await store.acquire_lease("agent:ceo", "node-a", ttl_s=10)
    assert lease is not None
    j = await RunJournal.open(store, "r", await store.claim_run("r", "node-a", lease=lease))
    j.lease = lease
    answers = iter([1e-12, 10.0])  # the first answer came later than the lease it reported
    asked: list[str] = []

    async def lease_left(held: Any) -> float:
        asked.append(held.name)
        return next(answers)

    monkeypatch.setattr(store, "lease_left", lease_left)

    async def perform(key: str) -> str:
        return "posted"

    assert (await j.effect_step(0, "post", {}, "once", perform)).value == "posted"
    assert asked == ["agent:ceo", "agent:ceo"]


async def test_an_effect_fenced_as_it_starts_is_not_recorded_as_an_error(store: Store) -> None:
    """A tool that finds, as its own code starts, that the lease may have run out raises Fenced: the
    step keeps its intent (the next holder reconciles it), never an error the run would replay."""
    await store.create_run("ceo", "go", run_id="r")
    j = await RunJournal.open(store, "r", await store.claim_run("r", "node-a"))

    async def perform(key: str) -> str:
        raise Fenced("the lease may have run out before the call could start")

    with pytest.raises(Fenced):
        await j.effect_step(0, "post", {}, "once", perform)
    assert [(s.seq, s.phase) for s in await store.steps("r")] == [(0, "intent")]
