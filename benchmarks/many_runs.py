"""Many runs of one agent at once, against a fake model server with a fixed latency.

A fake OpenAI-compatible server runs in its own process: every answer takes ``--latency`` seconds
(200 ms), and each run's conversation is scripted by the server — two ``lookup`` tool calls, then a
final answer — so a run is three model calls and two tool calls: five journaled steps, and its ideal
wall time is three latencies. N runs of one agent with ``concurrency = N`` should then take about
that long in all. Each case runs in its own process (so its CPU and memory are its own) and reports:
wall time against the ideal, runs/s, steps/s, CPU per step (the node's process and its children,
the server excluded), the node's peak RSS and the PSS of node plus children.

Peers on the same workload, the same server and the same store, as ratios:

- the floor: the same three model calls per run through the openai SDK's client with no runtime at
  all; each case's CPU per step minus the floor's is its *own* CPU per step (``own_cpu_ms_per_step``,
  the issue's "beamish's own CPU per journaled step"), the model client's cost left out;

- LangGraph: a model node and a tool node with a conditional edge, checkpointed by its SQLite
  checkpointer (``langgraph-checkpoint-sqlite``), N graphs at once;
- DBOS (if installed): a workflow of the same steps on a DBOS queue with ``concurrency = N``, its
  system database on SQLite.

Usage: ``python benchmarks/many_runs.py [--sizes 10,100] [--full] [--pg] [--latency 0.2] [--cases …]``.
``--full`` adds N = 1,000; ``--pg`` adds PostgreSQL for beamish (``BEAMISH_BENCH_PG``, default
the local test database); ``--cases`` keeps only the named cases. Ends with one JSON line of figures
and targets.

Per case, besides the totals: the overhead per step p50/p99 (each run's own wall time past its three
model latencies, per step, under the load of the others), the CPU per step p50/p99 of ``--solo``
runs one at a time (first size only; for process isolation read from /proc in 10 ms ticks), and
the worst lateness of a 5 ms timer on the node's loop while the agent starts and makes its first
model call (beside that of the idle loop, the host's own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
TOOL_CALLS = 2  #: per run, then a final answer
STEPS = 2 * TOOL_CALLS + 1  #: journaled steps per run (model calls and tool calls)
PG_URL = os.environ.get("BEAMISH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


class State(TypedDict):
    """LangGraph's state for the peer: the conversation."""

    messages: list[dict[str, Any]]


# -- the fake model server (its own process) ------------------------------------------------------


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if done < TOOL_CALLS:
        args = json.dumps({"topic": f"t{done}"})
        message["tool_calls"] = [
            {"id": f"call_{done}", "type": "function", "function": {"name": "lookup", "arguments": args}}
        ]
    else:
        message["content"] = "All done."
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": body.get("model", "gpt-bench"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if done < TOOL_CALLS else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }


async def _serve(latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: the SDKs reuse their connections
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = json.loads(await reader.readexactly(length)) if length else {}
                await asyncio.sleep(latency)
                payload = json.dumps(_answer(body)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(latency)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


# -- what a case costs: CPU and memory from /proc ----------------------------------------------------


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # gone since
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        for child in children:
            found += _tree(int(child))
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class LagProbe:
    """The worst lateness of a 5 ms timer on this loop while it runs: how long the loop was blocked."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - t - 0.005)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def solo_cpu(one: Any, count: int, cpu: Any = time.process_time) -> dict[str, float]:
    """CPU per step of ``count`` runs one after another (nothing else in flight): p50 and p99."""
    if count <= 0:
        return {}
    per_step: list[float] = []
    for i in range(count):
        c0 = cpu()
        await one(i)
        per_step.append(1000 * (cpu() - c0) / STEPS)
    return {
        "solo_cpu_ms_per_step_p50": round(_pct(per_step, 0.5), 3),
        "solo_cpu_ms_per_step_p99": round(_pct(per_step, 0.99), 3),
    }


def _figures(
    n: int, wall: float, cpu: float, latency: float, run_walls: list[float] | None = None
) -> dict[str, Any]:
    ideal = (TOOL_CALLS + 1) * latency
    pids = _tree(os.getpid())
    # a run's own wall time past its three model latencies, per step: what the runtime (and the
    # load of the other runs in flight) adds to each step
    over = [1000 * max(0.0, w - ideal) / STEPS for w in run_walls or []]
    return {
        "overhead_ms_per_step_p50": round(_pct(over, 0.5), 2),
        "overhead_ms_per_step_p99": round(_pct(over, 0.99), 2),
        "n": n,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "vs_ideal": round(wall / ideal, 2),
        "runs_per_s": round(n / wall, 1),
        "steps_per_s": round(n * STEPS / wall, 1),
        "cpu_ms_per_step": round(1000 * cpu / (n * STEPS), 3),
        "rss_mb": round(_peak_rss_mb(), 1),
        "pss_mb": round(_pss_mb(pids), 1),
    }


# -- the cases (each in its own process) ------------------------------------------------------------


def _tree_cpu() -> float:
    return _cpu(_tree(os.getpid()))


async def case_beamish(
    n: int, isolation: str, store: str, base_url: str, latency: float, solo_runs: int
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from agent import fixture_tools as ft
    from beamish import AgentSpec, Budget, Watchdog
    from beamish.agent._pricing import Price
    from beamish.journal import open_store
    from beamish.runtime import Node, SupervisorSpec

    spec = AgentSpec(
        name="bench",
        instructions="Answer the customer.",
        model="openai:gpt-bench",
        model_options={"base_url": base_url, "api_key": "bench", "stream": False},
        tools=[ft.lookup],
        isolation=isolation,  # type: ignore[arg-type]
        concurrency=n,
        budget=Budget(
            per_day_usd=1_000_000.0, prices={"openai:*": Price(input_per_mtok=1, output_per_mtok=1)}
        ),
        watchdog=Watchdog(),
    )
    async with Node(store=store) as node:
        with LagProbe() as idle:  # the machine's own lateness (a shared host's load), for scale
            await asyncio.sleep(0.5)
        with LagProbe() as lag:  # the agent's start and its first model call, on the node's loop
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            warm = await node.submit("bench", "warm up")  # imports, connections, the agent's process
            assert (await node.result(warm, timeout=60)).status == "succeeded"
        reader = await open_store(store)

        async def one(i: int) -> None:
            run = await node.submit("bench", f"solo {i}")
            assert (await node.result(run, timeout=60)).status == "succeeded"

        solo = await solo_cpu(one, solo_runs, time.process_time if isolation == "task" else _tree_cpu)
        pids = _tree(os.getpid())
        cpu0, t0 = _cpu(pids), time.perf_counter()
        batch = uuid.uuid4().hex[:8]
        for i in range(n):
            await node.submit("bench", f"customer {i}", run_id=f"{batch}-{i}")
        finished = "SELECT COUNT(*) AS c FROM runs WHERE run_id LIKE ? AND status IN ('succeeded', 'failed')"
        while True:
            row = await reader.fetchone(finished, (f"{batch}-%",))
            if row is not None and int(row["c"]) >= n:
                break
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
        cpu = _cpu(_tree(os.getpid())) - cpu0
        failed = await reader.fetchone(
            "SELECT COUNT(*) AS c FROM runs WHERE run_id LIKE ? AND status = 'failed'", (f"{batch}-%",)
        )
        rows = await reader.fetchall(
            "SELECT created_at, updated_at FROM runs WHERE run_id LIKE ?", (f"{batch}-%",)
        )
        figures = _figures(n, wall, cpu, latency, [r["updated_at"] - r["created_at"] for r in rows])
        await reader.close()
    figures["failed"] = int(failed["c"]) if failed is not None else -1
    figures["first_call_loop_lag_ms"] = round(1000 * lag.worst, 1)
    figures["idle_loop_lag_ms"] = round(1000 * idle.worst, 1)
    return {**figures, **solo}


async def case_langgraph(n: int, db: str, base_url: str, latency: float, solo_runs: int) -> dict[str, Any]:
    import openai
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

    async def model(state: State) -> State:
        reply = await client.chat.completions.create(model="gpt-bench", messages=state["messages"])  # type: ignore[arg-type]
        return {"messages": [*state["messages"], reply.choices[0].message.model_dump(exclude_none=True)]}

    async def tools(state: State) -> State:
        last = state["messages"][-1]
        results = [
            {
                "role": "tool",
                "tool_call_id": c["id"],
                "content": f"fact about {json.loads(c['function']['arguments'])['topic']}",
            }
            for c in last["tool_calls"]
        ]
        return {"messages": [*state["messages"], *results]}

    def route(state: State) -> str:
        return "tools" if state["messages"][-1].get("tool_calls") else END

    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    async with AsyncSqliteSaver.from_conn_string(db) as saver:
        app = graph.compile(checkpointer=saver)

        async def one(i: int, batch: str) -> float:
            start = {"messages": [{"role": "user", "content": f"customer {i}"}]}
            await app.ainvoke(start, {"configurable": {"thread_id": f"{batch}-{i}"}})
            return time.perf_counter()

        with LagProbe() as lag:
            await one(0, "warm")
        solo = await solo_cpu(lambda i: one(i, "solo"), solo_runs)
        cpu0, t0 = _cpu([os.getpid()]), time.perf_counter()
        ends = await asyncio.gather(*(one(i, "bench") for i in range(n)))
        wall = time.perf_counter() - t0
        cpu = _cpu([os.getpid()]) - cpu0
    figures = _figures(n, wall, cpu, latency, [e - t0 for e in ends])
    return {**figures, "first_call_loop_lag_ms": round(1000 * lag.worst, 1), **solo}


async def case_floor(n: int, base_url: str, latency: float, solo_runs: int) -> dict[str, Any]:
    """The floor under every case: the same three model calls per run through the openai SDK's
    client (as beamish posts them: the body as built, the answer read as JSON), no journal, no tool
    step. A case's CPU per step minus this one's is what its runtime adds to the model calls."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up a fact about a topic.",
                "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}},
            },
        }
    ]

    async def one(i: int) -> float:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Answer the customer."},
            {"role": "user", "content": f"customer {i}"},
        ]
        while True:
            body = {"model": "gpt-bench", "messages": messages, "tools": tools, "max_completion_tokens": 1024}
            answer = json.loads(await client.post("/chat/completions", body=body, cast_to=bytes))
            message = answer["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                return time.perf_counter()
            for call in message["tool_calls"]:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": "fact"})

    await one(-1)
    solo = await solo_cpu(one, solo_runs)
    cpu0, t0 = _cpu([os.getpid()]), time.perf_counter()
    ends = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    figures = _figures(n, wall, _cpu([os.getpid()]) - cpu0, latency, [e - t0 for e in ends])
    return {**figures, **solo}


def case_dbos(n: int, db: str, base_url: str, latency: float, solo_runs: int) -> dict[str, Any]:
    import openai
    from dbos import DBOS, Queue

    DBOS(config={"name": "many-runs-bench", "system_database_url": f"sqlite:///{db}"})
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

    @DBOS.step()
    async def model(messages: list[dict[str, Any]]) -> dict[str, Any]:
        reply = await client.chat.completions.create(model="gpt-bench", messages=messages)  # type: ignore[arg-type]
        return reply.choices[0].message.model_dump(exclude_none=True)

    @DBOS.step()
    async def lookup(topic: str) -> str:
        return f"fact about {topic}"

    @DBOS.workflow()
    async def run(task: str) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
        while True:
            answer = await model(messages)
            messages.append(answer)
            if not answer.get("tool_calls"):
                return str(answer.get("content"))
            for call in answer["tool_calls"]:
                text = await lookup(json.loads(call["function"]["arguments"])["topic"])
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})

    DBOS.launch()
    if hasattr(DBOS, "register_queue"):  # DBOS 3.4 declares queues in the system database
        queue = DBOS.register_queue("bench", concurrency=n, polling_interval_sec=0.05)
    else:
        queue = Queue("bench", concurrency=n, polling_interval_sec=0.05)

    async def main() -> dict[str, Any]:
        with LagProbe() as lag:
            warm = await queue.enqueue_async(run, "warm up")
            await warm.get_result()

        async def one(i: int) -> None:
            await (await queue.enqueue_async(run, f"solo {i}")).get_result()

        solo = await solo_cpu(one, solo_runs)
        cpu0, t0 = _cpu(_tree(os.getpid())), time.perf_counter()
        handles = [await queue.enqueue_async(run, f"customer {i}") for i in range(n)]

        async def end(handle: Any) -> float:
            await handle.get_result()
            return time.perf_counter()

        ends = await asyncio.gather(*(end(h) for h in handles))
        wall = time.perf_counter() - t0
        figures = _figures(n, wall, _cpu(_tree(os.getpid())) - cpu0, latency, [e - t0 for e in ends])
        return {**figures, "first_call_loop_lag_ms": round(1000 * lag.worst, 1), **solo}

    try:
        return asyncio.run(main())
    finally:
        DBOS.destroy()


def run_case(args: argparse.Namespace) -> None:
    name, n = args.case, args.n
    if name.startswith("beamish"):
        _, isolation, backend = name.split("-")
        store = PG_URL if backend == "pg" else f"sqlite:///{args.dir}/beamish.db"
        result = asyncio.run(case_beamish(n, isolation, store, args.base_url, args.latency, args.solo))
    elif name == "floor":
        result = asyncio.run(case_floor(n, args.base_url, args.latency, args.solo))
    elif name == "langgraph":
        db = f"{args.dir}/langgraph.db"
        result = asyncio.run(case_langgraph(n, db, args.base_url, args.latency, args.solo))
    else:
        result = case_dbos(n, f"{args.dir}/dbos.db", args.base_url, args.latency, args.solo)
    print(json.dumps(result), flush=True)


def spawn_case(case: str, n: int, base_url: str, latency: float, solo: int) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--case", case, "--n", str(n), "--base-url", base_url]
        cmd += ["--latency", str(latency), "--dir", tmp, "--solo", str(solo)]
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        print(f"  {case} n={n}: failed:\n{done.stderr.strip()[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--full", action="store_true", help="add N = 1,000")
    parser.add_argument("--pg", action="store_true", help="beamish on PostgreSQL too")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--cases", help="only these cases, comma-separated (e.g. beamish-task-sqlite,langgraph)"
    )
    parser.add_argument(
        "--solo", type=int, default=5, help="runs one at a time first, for CPU per step p50/p99 (first size)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.latency))
        return
    if args.case:
        run_case(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")] + ([1000] if args.full else [])
    cases = ["beamish-task-sqlite", "beamish-process-sqlite"]
    cases += ["beamish-task-pg", "beamish-process-pg"] if args.pg else []
    peers = (
        []
        if args.no_peers
        else [p for p, m in (("langgraph", "langgraph.checkpoint.sqlite"), ("dbos", "dbos")) if available(m)]
    )
    peers = ["floor", *peers]
    if args.cases:
        chosen = set(args.cases.split(","))
        cases, peers = [c for c in cases if c in chosen], [p for p in peers if p in chosen]
    server, base_url = start_server(args.latency)
    results: dict[str, dict[str, Any]] = {}
    try:
        for n in sizes:
            for case in cases + peers:
                found = spawn_case(case, n, base_url, args.latency, args.solo if n == sizes[0] else 0)
                if found is None:
                    continue
                results[f"{case}/{n}"] = found
                print(
                    f"{case:24} n={n:<5} wall {found['wall_s']:7.2f}s ({found['vs_ideal']:5.2f}x ideal)  "
                    f"{found['runs_per_s']:7.1f} runs/s  {found['steps_per_s']:7.1f} steps/s  "
                    f"cpu {found['cpu_ms_per_step']:6.2f} ms/step  overhead p50/p99 "
                    f"{found['overhead_ms_per_step_p50']:.1f}/{found['overhead_ms_per_step_p99']:.1f} ms  "
                    f"rss {found['rss_mb']:6.1f} MB  pss {found['pss_mb']:6.1f} MB",
                    flush=True,
                )
    finally:
        server.kill()
        server.wait()
    # each of beamish's figures beside each peer's, measured in this run, as ratios (lower is better)
    ratios: dict[str, float] = {}
    compared = (
        "vs_ideal",
        "cpu_ms_per_step",
        "own_cpu_ms_per_step",
        "own_solo_cpu_ms_per_step_p50",
        "own_solo_cpu_ms_per_step_p99",
        "overhead_ms_per_step_p50",
        "overhead_ms_per_step_p99",
        "solo_cpu_ms_per_step_p50",
        "solo_cpu_ms_per_step_p99",
        "first_call_loop_lag_ms",
        "rss_mb",
    )
    for n in sizes:
        floor = results.get(f"floor/{n}")
        for case in cases + peers:  # what each runtime adds to the model calls' own client CPU
            found = results.get(f"{case}/{n}")
            if floor and found and case != "floor":
                found["own_cpu_ms_per_step"] = round(found["cpu_ms_per_step"] - floor["cpu_ms_per_step"], 3)
                if "solo_cpu_ms_per_step_p50" in found and "solo_cpu_ms_per_step_p50" in floor:
                    for q in ("p50", "p99"):
                        found[f"own_solo_cpu_ms_per_step_{q}"] = round(
                            found[f"solo_cpu_ms_per_step_{q}"] - floor[f"solo_cpu_ms_per_step_{q}"], 3
                        )
    for n in sizes:
        ours = results.get(f"beamish-task-sqlite/{n}")
        if not ours:
            continue
        print(f"\nn={n}: beamish-task-sqlite beside " + ", ".join(p for p in peers if f"{p}/{n}" in results))
        for figure in compared:
            if figure not in ours:
                continue
            line = f"  {figure:26} {ours[figure]:9.2f}"
            for peer in peers:
                if peer == "floor" and figure.startswith("own"):
                    continue
                theirs = results.get(f"{peer}/{n}", {}).get(figure)
                if theirs is None:
                    continue
                ratio = round(ours[figure] / theirs, 2) if theirs else float("inf")
                ratios[f"{figure}_vs_{peer}/{n}"] = ratio
                line += f"   {peer} {theirs:9.2f} ({ratio:5.2f}x)"
            print(line)
    top = max(sizes)
    task = results.get(f"beamish-task-sqlite/{top}", {})
    process = results.get(f"beamish-process-sqlite/{min(top, 100)}", {})
    first = results.get(f"beamish-task-sqlite/{sizes[0]}", {})

    def peer_cpu(key: str) -> bool:
        return key.startswith("cpu_ms_per_step") and "_vs_floor" not in key

    def small(key: str) -> bool:
        return int(key.rsplit("/", 1)[1]) <= 100

    def own_le(prefix: str, limit: float) -> bool | None:
        owns = [r["own_cpu_ms_per_step"] for k, r in results.items() if k.startswith(prefix) and small(k)]
        owns = [o for o in owns if o is not None]
        return all(o <= limit for o in owns) if owns else None

    print(
        json.dumps(
            {
                "benchmark": "many_runs",
                "latency_s": args.latency,
                "steps_per_run": STEPS,
                "results": results,
                "ratios": ratios,
                "targets": {
                    "task_1000_within_1_5x_ideal": task.get("vs_ideal", 99) <= 1.5 if top >= 1000 else None,
                    "task_rss_mb_le_500": task.get("rss_mb", 1e9) <= 500,
                    "process_100_pss_mb_le_1024": process["pss_mb"] <= 1024 if process else None,
                    "cpu_per_step_le_0_3x_peers": all(v <= 0.3 for k, v in ratios.items() if peer_cpu(k))
                    if any(peer_cpu(k) for k in ratios)
                    else None,
                    # "own" against the floor up to N = 100 only: at 1,000 requests at once the
                    # floor's own HTTP pool costs more per call than a runtime's paced calls do
                    "own_cpu_per_step_le_0_3x_peers": all(
                        v <= 0.3
                        for k, v in ratios.items()
                        if k.startswith("own_cpu_ms_per_step") and small(k)
                    )
                    if any(k.startswith("own_cpu_ms_per_step") and small(k) for k in ratios)
                    else None,
                    "task_own_cpu_ms_per_step_le_1": own_le("beamish-task", 1.0),
                    "process_own_cpu_ms_per_step_le_2": own_le("beamish-process", 2.0),
                    "task_own_solo_cpu_ms_per_step_p99_le_5": first.get("own_solo_cpu_ms_per_step_p99", 99)
                    <= 5.0,
                    "first_call_loop_lag_ms_le_50": first.get("first_call_loop_lag_ms", 1e9) <= 50,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
