"""A store with what the dashboard's pages show: runs of every status, one run with every kind of
step, restarts, upgrades and a rollback, spend on the ledger and the company's caps."""

from __future__ import annotations

from typing import Any

from beamish import Budget
from beamish._events import Event
from beamish._exits import Crashed
from beamish.agent._budget import set_company_budget
from beamish.journal import open_store

SECRET = "sk-ant-api03-" + "x" * 40
HOSTILE = "<script>alert('x')</script>"
#: A run id a URL must quote to reach.
ODD_ID = "odd/id?x=1#y%2F"
#: How many plain succeeded runs the store holds besides the special ones (more than a page).
PLAIN_RUNS = 55


async def the_timeline_run(store: Any) -> None:
    """``r-timeline``: a model call asking for a tool, the tool (an effect, once), a nudge; a
    replay and a divergence; it fails with a two-line error."""
    await store.create_run("cfo", f"Approve the laptops {HOSTILE}", run_id="r-timeline")
    epoch = await store.claim_run("r-timeline", "node")
    await store.append_event(Event("run.started", "r-timeline", {"run_id": "r-timeline", "agent": "cfo"}))
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
        "r-timeline", 0, epoch, kind="llm", phase="done", name="anthropic:claude-haiku-4-5",
        request={"messages": []}, response=response, tokens_in=120, tokens_out=30, cost_usd=0.0012,
    )  # fmt: skip
    request = {"tool": "approve_spend", "args": {"item": "laptops", "api_key": SECRET, "note": "n" * 500}}
    await store.record_step(
        "r-timeline",
        1,
        epoch,
        kind="tool",
        phase="intent",
        name="approve_spend",
        request=request,
        effect="once",
    )
    await store.record_step(
        "r-timeline", 1, epoch, kind="tool", phase="done", name="approve_spend", request=request,
        effect="once", response={"text": f"approved with {SECRET}", "is_error": False},
    )  # fmt: skip
    await store.record_step(
        "r-timeline", 2, epoch, kind="signal", phase="done", name="nudge",
        request={"nudge": "You repeat yourself."}, response="You repeat yourself.",
    )  # fmt: skip
    await store.append_event(
        Event("step.replayed", "r-timeline", {"run_id": "r-timeline", "count": 2, "from_seq": 0, "to_seq": 1})
    )
    await store.append_event(Event("step.divergence", "r-timeline", {"run_id": "r-timeline", "seq": 2}))
    await store.update_run(
        "r-timeline", status="failed", reason=Crashed(ValueError("the bank said no\nline two")), epoch=epoch
    )


async def filled_store(url: str) -> Any:
    store = await open_store(url)
    for i in range(PLAIN_RUNS):
        await store.create_run("ceo", f"plan {i}", run_id=f"r-plain-{i:02d}")
        await store.update_run(f"r-plain-{i:02d}", status="succeeded", output=f"done {i}")
    await store.create_run("coo", "the board", run_id="r-held")
    await store.update_run("r-held", status="paused")
    await store.create_run("coo", "the books", run_id="r-attention")
    await store.update_run("r-attention", status="needs_attention")
    await store.create_run(HOSTILE, HOSTILE, run_id="r-hostile")
    await store.create_run("ceo", "an odd id", run_id=ODD_ID)
    await the_timeline_run(store)
    for agent, amount in (("ceo", 0.4), ("cfo", 0.25), ("ceo", 0.35)):
        await store.add_ledger(agent, amount)
    await set_company_budget(store, Budget(per_day_usd=2.0, per_month_usd=40.0))
    for i in range(3):
        await store.append_event(
            Event("child.restarted", "root/finance/cfo", {"id": "cfo", "restarts": i + 1})
        )
    upgrade = {"agent": "lawyer", "version": 2, "previous": 1, "author": "agent:improver"}
    await store.append_event(
        Event("agent.upgraded", "lawyer", {**upgrade, "reason": "clauses slipped through"})
    )
    await store.append_event(Event("agent.rolled_back", "lawyer", {"agent": "lawyer", "from": 2, "to": 1}))
    await store.append_event(Event("run.finished", "r-hostile", {"run_id": "r-hostile", "agent": HOSTILE}))
    return store
