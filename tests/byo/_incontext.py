"""A run context without an agent actor: what a restarted agent incarnation sets up, by hand."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import beamish
from beamish.agent._hooks import NullHooks
from beamish.byo._context import RunContext, enter, leave
from beamish.journal import Store
from beamish.journal._replay import RunJournal


@contextlib.asynccontextmanager
async def in_run(store: Store, run_id: str) -> AsyncIterator[RunContext]:
    """Claim ``run_id`` (creating it) and make it the current run, as an agent incarnation does."""
    await store.create_run("writer", "task", run_id=run_id)
    epoch = await store.claim_run(run_id, f"test:{uuid.uuid4().hex[:6]}")
    journal = await RunJournal.open(store, run_id, epoch)
    ctx = RunContext(
        run_id=run_id,
        agent="writer",
        task="task",
        model="openai:gpt-4o-mini",
        journal=journal,
        hooks=NullHooks(),
        clock=beamish.runtime.SYSTEM_CLOCK,
        loop=asyncio.get_running_loop(),
    )
    token = enter(ctx)
    try:
        yield ctx
    finally:
        leave(token)
        await journal.flush()
