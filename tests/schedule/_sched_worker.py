"""A scheduler in its own process, stepping a fake wall clock minute by minute over a shared store.

Usage: python _sched_worker.py URL OWNER T0 STEPS [KILL_AT [LEASE_S]]
With ``KILL_AT`` = N (0: never) the process SIGKILLs itself inside its N-th hand-over: after the tick
was claimed in the store and before that tick's agent saw it (others of the same batch may be
mid-hand-over). ``LEASE_S`` is the dispatch lease (default 3600 s of scheduler time).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from _sched_agents import RecordingAgents

from beamish.journal import open_store
from beamish.schedule import Scheduler
from beamish.testing import FakeClock


async def main(url: str, owner: str, t0: float, steps: int, kill_at: int, lease_s: float) -> None:
    clock = FakeClock()
    clock.set_wall(t0)
    store = await open_store(url, clock=clock)
    agents = RecordingAgents(store)

    handed_over = 0

    async def submit(agent: str, input: Any, *, run_id: str) -> object:
        nonlocal handed_over
        handed_over += 1
        if handed_over == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return await agents(agent, input, run_id=run_id)

    sched = Scheduler(store, submit, clock=clock, owner=owner, dispatch_lease_s=lease_s)
    # A start barrier, so racing workers really race: say ready, wait for the parent's go.
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        for step in range(1, steps + 1):
            clock.set_wall(t0 + 60 * step + 1)
            await sched.run_pass()
    finally:
        await store.close()


if __name__ == "__main__":
    url, owner, t0, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    lease_s = float(sys.argv[6]) if len(sys.argv) > 6 else 3600.0
    asyncio.run(main(url, owner, t0, steps, kill_at, lease_s))
