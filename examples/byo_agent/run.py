"""A Pydantic AI agent under beamish supervision, offline, killed mid-run and resumed.

    python examples/byo_agent/run.py [--no-kill] [--dir DIR]

The agent (``writer.py``) runs in its own process against a local fake OpenAI server. It
researches, publishes a post (a ``once`` effect), and while it waits for the model's last answer
the demo SIGKILLs its process. Its supervisor starts a new one; the run resumes from the journal:
the two answered model requests come from the journal (the server is not asked again), the post
is not published again, and only the request that never got an answer is sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_openai import FakeOpenAI  # noqa: E402

import beamish  # noqa: E402
from beamish.journal import open_store  # noqa: E402


async def main(kill: bool, store: str) -> int:
    spec = beamish.AgentSpec(
        name="writer",
        instructions="",  # the agent's own instructions are in writer.py
        model="openai:gpt-4o-mini",  # what it is priced and budgeted by
        entry="writer:main",
        budget=beamish.Budget(per_run_usd=0.05),
        watchdog=beamish.Watchdog(hang_after_s=60),
    )
    log = Path(os.environ["BYO_DIR"]) / "publications.log"
    async with await open_store(store) as journal:
        if await journal.list_runs(agent="writer"):
            print("the run is in the journal already: it is not run again, nothing is repeated")
            kill = False
    async with FakeOpenAI(hold_at=3 if kill else None) as server, beamish.Node(store=store) as node:
        await node.start_supervisor(beamish.SupervisorSpec([spec.child_spec()], intensity=3, period=30))
        task = {"task": "Write today's launch post.", "base_url": server.url}
        run_id = await node.submit("writer", task, run_id="launch-post")
        if kill:
            await asyncio.wait_for(server.holding.wait(), 60)  # published, now asking the model again
            pid = int(log.read_text().splitlines()[-1].split("\t")[1])
            print(f"killing the agent process {pid} mid-run (SIGKILL)")
            os.kill(pid, signal.SIGKILL)
            server.release()
        result = await node.result(run_id, timeout=60)
    print(f"run {result.run_id}: {result.status}")
    print(f"answer: {result.output}")
    print(
        f"model calls in the journal: {result.model_calls}, served from it on resume: {result.replayed_calls}"
    )
    print(f"requests the server answered this time: {server.answered} (received {server.received})")
    print(f"cost: ${result.cost_usd:.6f}")
    print(f"publications: {len(log.read_text().splitlines())}")
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-kill", action="store_true", help="run to the end without the kill")
    parser.add_argument("--dir", default=str(Path.cwd() / "byo-demo"), help="where the journal goes")
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    os.environ["BYO_DIR"] = str(Path(args.dir).resolve())
    store_url = f"sqlite:///{Path(args.dir).resolve() / 'journal.db'}"
    sys.exit(asyncio.run(main(not args.no_kill, store_url)))
