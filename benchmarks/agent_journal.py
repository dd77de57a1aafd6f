"""What the journal costs the agent loop, what a replay saves, and how fast a killed agent resumes.

Three figures, each beside its peer measured in the same run:

- ``journaled`` vs ``bare``: time per step (model calls plus tool calls) of the real ``RunLoop`` on
  a SQLite journal (``synchronous=FULL``: one durable write per step, two for effect tools) against
  the same conversation driven with no journal at all — the price of durability per step;
- ``replay`` vs ``journaled``: time per step when a finished run is executed again and every step
  comes back from the journal — what a restarted agent pays to catch up (the model is free here, so
  this is the floor; with a real model the live side costs seconds per call);
- ``resume``: from SIGKILL of a process-isolated agent mid-run to its successor's first live model
  call of the same run, beside a bare ``fork()+exec`` of a Python interpreter (``python -c pass``)
  — the naive way to bring a dead worker back, before it has even opened its journal.

Usage: ``python benchmarks/agent_journal.py [--turns 40] [--rounds 7] [--kills 5]``. Ends with
one JSON line of figures and targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent import fixture_tools as ft  # noqa: E402
from beamish import AgentSpec  # noqa: E402
from beamish.agent._hooks import NullHooks  # noqa: E402
from beamish.agent._loop import RunLoop  # noqa: E402
from beamish.agent._messages import Message, ModelRequest  # noqa: E402
from beamish.agent._tools import ToolContext, ToolSet  # noqa: E402
from beamish.agent.models._scripted import ScriptedModel  # noqa: E402
from beamish.journal import open_store  # noqa: E402
from beamish.runtime import Node, SupervisorSpec  # noqa: E402


def script(directory: Path, turns: int, log: bool = False) -> Path:
    data: dict[str, Any] = {
        "turns": [{"tool_calls": [{"name": "lookup", "arguments": {"topic": f"t{i}"}}]} for i in range(turns)]
        + [{"text": "done"}]
    }
    if log:
        data["call_log"] = str(directory / "calls.jsonl")
    path = directory / f"script-{turns}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(data))
    return path


async def bare(path: Path) -> int:
    """The same conversation, no journal: model call, tool call, repeat."""
    model = ScriptedModel(path)
    tools = ToolSet("bench", [ft.lookup])
    messages = [Message(role="user", text="go")]
    steps = 0
    while True:
        response = await model.complete(
            ModelRequest(system="bench", messages=tuple(messages), tools=tools.schemas())
        )
        messages.append(response.as_message())
        steps += 1
        if not response.tool_calls:
            return steps
        for call in response.tool_calls:
            ctx = ToolContext(run_id="bare", agent="bench", tool=call.name, seq=steps)
            text = await tools.get(call.name).invoke(call.arguments, ctx)
            messages.append(Message(role="tool", text=text, tool_call_id=call.id))
            steps += 1


async def journaled(store: Any, path: Path, run_id: str) -> tuple[float, float, int]:
    spec = AgentSpec("bench", "bench", f"scripted:{path}", [ft.lookup], isolation="task")
    loop = RunLoop(
        spec=spec,
        model=ScriptedModel(path),
        tools=ToolSet("bench", [ft.lookup]),
        hooks=NullHooks(),
        store=store,
        clock=store.clock,
        owner="bench",
    )
    run, _ = await store.create_run("bench", "go", run_id=run_id)
    started = time.perf_counter()
    await loop.execute(run)
    live = time.perf_counter() - started
    await store.update_run(run_id, status="queued")
    run = await store.get_run(run_id)
    started = time.perf_counter()
    await loop.execute(run)
    replay = time.perf_counter() - started
    steps = len(await store.steps(run_id))
    return live, replay, steps


async def resume_latency(directory: Path, kills: int) -> list[float]:
    """SIGKILL a process agent held in a tool; time until its successor makes the next model call."""
    out = []
    for i in range(kills):
        path = directory / f"resume-{i}.json"
        turns = [{"tool_calls": [{"name": "lookup", "arguments": {"topic": "hold"}}]}, {"text": "done"}]
        path.write_text(json.dumps({"turns": turns, "call_log": str(directory / f"resume-{i}.calls")}))
        run_id = f"resume-{uuid.uuid4().hex}"
        ft.hold_file(run_id).write_text("lookup:hold")
        spec = AgentSpec("bench", "bench", f"scripted:{path}", [ft.lookup], isolation="process")
        async with Node(store=f"sqlite:///{directory}/resume-{i}.db") as node:
            await node.start_supervisor(
                SupervisorSpec([spec.child_spec(backoff=None)], intensity=5, period=10)
            )
            await node.submit("bench", "go", run_id=run_id)
            holding = ft.holding_file(run_id)
            while not holding.exists():
                await asyncio.sleep(0.001)
            calls = directory / f"resume-{i}.calls"
            before = len(calls.read_text().splitlines())
            killed = time.perf_counter()
            os.kill(int(holding.read_text()), signal.SIGKILL)
            while len(calls.read_text().splitlines()) == before:
                await asyncio.sleep(0.0005)
            out.append(time.perf_counter() - killed)
            await node.result(run_id, timeout=30)
    return out


def interpreter_start(n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out.append(time.perf_counter() - started)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6, 1),
    }


async def main(turns: int, rounds: int, kills: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="beamish-agent-bench-"))
    store = await open_store(f"sqlite:///{directory}/journal.db")
    bare_step, live_step, replay_step = [], [], []
    for r in range(rounds):
        path = script(directory, turns)
        started = time.perf_counter()
        steps = await bare(path)
        bare_step.append((time.perf_counter() - started) / steps)
        live, replay, jsteps = await journaled(store, path, f"bench-{r}")
        assert jsteps == steps, (jsteps, steps)
        live_step.append(live / steps)
        replay_step.append(replay / steps)
    await store.close()
    resume = await resume_latency(directory, kills)
    fresh = interpreter_start(kills)
    figures = {
        "bare_step": summary(bare_step),
        "journaled_step": summary(live_step),
        "replay_step": summary(replay_step),
        "resume_after_sigkill": summary(resume),
        "python_interpreter_start": summary(fresh),
    }
    j, b, rp = (figures[k]["median_us"] for k in ("journaled_step", "bare_step", "replay_step"))
    res, py = figures["resume_after_sigkill"]["median_us"], figures["python_interpreter_start"]["median_us"]
    print(f"steps per run: {2 * turns + 1}, rounds: {rounds}, kills: {kills}")
    print(f"  journaled step {j:>9.1f} us  vs bare step {b:>7.1f} us  = {j / b:.1f}x (durable writes)")
    print(f"  replayed step  {rp:>9.1f} us  vs journaled  {j:>7.1f} us  = {rp / j:.3f}x")
    resumed = f"{res / 1000:>7.1f} ms vs a bare interpreter start {py / 1000:.1f} ms = {res / py:.2f}x"
    print(f"  resume after SIGKILL {resumed}")
    out = {
        "benchmark": "agent_journal",
        **figures,
        "journaled_vs_bare": round(j / b, 3),
        "replay_vs_journaled": round(rp / j, 4),
        "resume_vs_interpreter_start": round(res / py, 3),
        "targets": {"replay_vs_journaled_max": 0.5, "resume_after_sigkill_ms_max": 1000.0},
    }
    out["meets_targets"] = out["replay_vs_journaled"] <= 0.5 and res / 1000 <= 1000.0
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds, args.kills))
