"""A run's timeline from the journal: steps with their costs, tools with arguments and results
(redacted, shortened), effects and keys, marks from the events, latency and the run's end."""

from __future__ import annotations

from beamish._events import Event
from beamish._exits import Crashed
from beamish.journal import Store
from beamish.journal._timeline import SHORT, run_timeline
from beamish.testing import FakeClock

SECRET = "sk-ant-api03-" + "x" * 40


async def _run_with_every_kind_of_step(store: Store, clock: FakeClock) -> str:
    run, _ = await store.create_run("cfo", "Approve the laptops", run_id="r1")
    epoch = await store.claim_run("r1", "node")
    clock.advance(0.5)
    await store.append_event(Event("run.started", "r1", {"run_id": "r1", "agent": "cfo"}, at=clock.time()))
    clock.advance(1.25)  # the model call: journaled once, when it ends
    response = {
        "text": "",
        "tool_calls": [{"id": "c1", "name": "approve_spend", "arguments": {"item": "laptops"}}],
        "usage": {
            "input_tokens": 120,
            "output_tokens": 30,
            "cache_read_tokens": 800,
            "cache_write_tokens": 5,
        },
        "model": "anthropic:claude-haiku-4-5",
    }
    await store.record_step(
        "r1", 0, epoch, kind="llm", phase="done", name="anthropic:claude-haiku-4-5",
        request={"messages": []}, response=response, tokens_in=120, tokens_out=30, cost_usd=0.0012,
    )  # fmt: skip
    request = {"tool": "approve_spend", "args": {"item": "laptops", "api_key": SECRET, "note": "n" * 500}}
    await store.record_step(
        "r1", 1, epoch, kind="tool", phase="intent", name="approve_spend", request=request, effect="once"
    )
    clock.advance(0.25)
    await store.record_step(
        "r1", 1, epoch, kind="tool", phase="done", name="approve_spend", request=request, effect="once",
        response={"text": f"approved with {SECRET}", "is_error": False},
    )  # fmt: skip
    clock.advance(0.1)
    await store.record_step(
        "r1", 2, epoch, kind="signal", phase="done", name="nudge", request={"nudge": "You repeat yourself."},
        response="You repeat yourself.",
    )  # fmt: skip
    await store.append_event(
        Event("step.replayed", "r1", {"run_id": "r1", "count": 2, "from_seq": 0, "to_seq": 1})
    )
    await store.append_event(Event("step.divergence", "r1", {"run_id": "r1", "seq": 2, "differs": []}))
    await store.update_run(
        "r1", status="failed", reason=Crashed(ValueError("the bank said no\nline two")), epoch=epoch
    )
    return run.run_id


async def test_the_timeline_lists_each_step_with_what_it_cost_did_and_took(
    store: Store, clock: FakeClock
) -> None:
    run_id = await _run_with_every_kind_of_step(store, clock)
    timeline = (await run_timeline(store, run_id)).to_json()
    llm, tool, nudge = timeline["steps"]
    assert (llm["kind"], llm["model"], llm["cost_usd"]) == ("llm", "anthropic:claude-haiku-4-5", 0.0012)
    assert llm["tokens"] == {"in": 120, "out": 30, "cache_read": 800, "cache_write": 5}
    assert llm["latency_s"] == 1.25  # from the run's start to the step's end
    assert "approve_spend" in llm["result"]
    assert (tool["name"], tool["effect"], tool["idempotency_key"]) == ("approve_spend", "once", "r1:1")
    assert tool["latency_s"] == 0.25  # from its intent to its outcome
    assert llm["marks"] == ["replayed"] and tool["marks"] == ["replayed"]
    assert nudge["marks"] == ["diverged", "nudged"]
    assert timeline["status"] == "failed" and "the bank said no" in timeline["error"]
    assert timeline["steps_cost_usd"] == 0.0012


async def test_tool_arguments_and_results_are_redacted_and_shortened_unless_full(
    store: Store, clock: FakeClock
) -> None:
    run_id = await _run_with_every_kind_of_step(store, clock)
    timeline = await run_timeline(store, run_id)
    short = timeline.to_json()["steps"][1]
    assert SECRET not in str(short) and len(short["arguments"]) <= SHORT
    assert short["result"].startswith("approved with ") and SECRET not in short["result"]
    full = timeline.to_json(full=True)["steps"][1]
    assert full["arguments"]["note"] == "n" * 500 and full["arguments"]["api_key"] != SECRET
    assert SECRET not in str(full)


async def test_a_run_without_steps_has_an_empty_timeline_and_no_error(store: Store) -> None:
    await store.create_run("cfo", "t", run_id="r2")
    timeline = (await run_timeline(store, "r2")).to_json()
    assert (timeline["steps"], timeline["error"], timeline["status"]) == ([], None, "queued")
