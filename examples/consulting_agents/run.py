"""Two agents consulting each other, offline, on the scripted model.

    python examples/consulting_agents/run.py [--isolation task|process] [--store URL]

The CEO consults the CFO; the CFO reads the ledger and tries to consult the CEO back, which is
refused at once (a consult cycle); the CFO answers; the CEO announces its decision (a ``once`` tool)
and gives its final answer. Every model call and tool call is a step of a journal (SQLite by
default): the run id is the idempotency key, so running the example again finds the finished run
in the journal and prints it — no model is called, nothing is announced twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import consulting_tools  # noqa: E402

import beamish  # noqa: E402
from beamish.journal import open_store  # noqa: E402


def agents(isolation: str) -> list[beamish.AgentSpec]:
    common = {"isolation": isolation, "consult_deadline_s": 30.0}
    ceo = beamish.AgentSpec(
        name="ceo",
        instructions="You run the company. Ask the CFO about money before deciding.",
        model=f"scripted:{HERE / 'scripts' / 'ceo.toml'}",
        tools=["consult", consulting_tools.announce],
        **common,  # type: ignore[arg-type]
    )
    cfo = beamish.AgentSpec(
        name="cfo",
        instructions="You keep the books. Answer from the ledger.",
        model=f"scripted:{HERE / 'scripts' / 'cfo.toml'}",
        tools=["consult", consulting_tools.read_ledger],
        **common,  # type: ignore[arg-type]
    )
    return [ceo, cfo]


async def main(isolation: str, store: str) -> int:
    tree = beamish.SupervisorSpec([spec.child_spec() for spec in agents(isolation)], intensity=3, period=10)
    async with beamish.Node(store=store) as node:
        await node.start_supervisor(tree)
        run_id = await node.submit("ceo", "Should we hire two engineers in Q4?", run_id="decision-q4-hiring")
        result = await node.result(run_id, timeout=60)
    print(f"run {result.run_id}: {result.status}")
    print(f"answer: {result.output}")
    print(f"model calls made: {result.model_calls}, served from the journal: {result.replayed_calls}")
    async with await open_store(store) as journal:
        asked = await journal.list_runs(agent="cfo")
        for rid, who in [(run_id, "ceo"), *((r.run_id, "cfo") for r in asked)]:
            print(f"journal of {who}'s run {rid}:")
            for step in await journal.steps(rid):
                text = (step.messages or [{}])[0].get("text", "")
                name = step.name.rsplit("/", 1)[-1]  # a scripted model's name ends in its script file
                print(f"  step {step.seq:>2} {step.kind:<8} {name:<16} {step.phase:<5} {text[:80]!r}")
    announced = (Path(os.environ["CONSULTING_DIR"]) / "announcements.log").read_text().splitlines()
    print(f"announcements made: {len(announced)}")
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", choices=["task", "process"], default="process")
    parser.add_argument("--dir", default=str(Path.cwd() / "consulting-demo"), help="where the journal goes")
    parser.add_argument("--store", default=None, help="a store URL (default: SQLite in --dir)")
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    os.environ["CONSULTING_DIR"] = str(Path(args.dir).resolve())
    store_url = args.store or f"sqlite:///{Path(args.dir).resolve() / 'journal.db'}"
    sys.exit(asyncio.run(main(args.isolation, store_url)))
