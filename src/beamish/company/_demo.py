"""``beamish demo``: the solo company offline, under a fault plan, ending in a checked summary.

The company from ``examples/solo_company`` runs on the scripted model (named as such everywhere),
with SQLite in a temporary folder, the shared memory server, and its schedules on an accelerated
clock (a working day, 08:55 to 18:55 UTC, in ``duration`` seconds). While it runs, the fault plan
kills agent processes and corrupts the memory file; the scripts play 429s, 500s, a loop, a costly
agent, a hung tool and a tool whose bug crashes its agent. At the end the journal is read back and
checked against the world's records: the tools' effect log, the recorded versions, the memory file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish.agent._gates import pending_gates
from beamish.agent._tools import Tool
from beamish.company._company import Company
from beamish.company._config import CompanyConfig, load_config_data, schedule_entries
from beamish.company._demo_sink import LocalSink
from beamish.company._effects import Fact, World, world_of
from beamish.company._examples import solo_company_dir
from beamish.company._faults import AcceleratedClock, FaultPlan, agent_processes
from beamish.company._memory_check import graph_facts
from beamish.company._memory_tools import MEMORY_TOOLS
from beamish.company._summary import MemoryRecord, Summary, summarize
from beamish.company._tree import CompanyParts, config_caps
from beamish.journal import open_store
from beamish.schedule._history import success_rate

#: The simulated span of one demo: a working day's schedules, whatever the real duration.
SIMULATED_S = 10 * 3600.0
#: The price the demo charges for the scripted model (Claude Sonnet's list price), so budgets bite.
DEMO_PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


@dataclass
class DemoSettings:
    duration_s: float = 60.0
    seed: int | None = None
    workdir: Path | None = None
    kill_every_s: float = 3.0
    hang_after_s: float = 2.0
    costly_agent: str = "coo"
    costly_cap_usd: float = 0.25
    log: Callable[[str], None] = field(default=lambda _: None)


#: The environment variable the demo's webhook secret travels in (the alerter reads it there).
ALERT_SECRET_ENV = "BEAMISH_DEMO_ALERT_SECRET"
#: Extra posts the demo asks of marketing through the public API (each waits for approval).
EXTRA_POSTS = 3


def demo_config(
    workdir: Path,
    settings: DemoSettings,
    example: Path | None = None,
    *,
    call_log: Path | None = None,
    alert_url: str | None = None,
) -> CompanyConfig:
    """The solo company's config, pointed at ``workdir`` and the scripted model, with the demo's limits.

    With ``call_log``, the agents play copies of the scripts that log every call there. Marketing's
    posts wait for the owner's approval; with ``alert_url``, alerts go there as signed webhooks.
    """
    example = example or solo_company_dir()
    scripts = copy_scripts(example, workdir, call_log) if call_log is not None else {}
    data = tomllib.loads((example / "beamish.toml").read_text(encoding="utf-8"))
    data["store"] = {"url": f"sqlite:///{workdir / 'beamish.db'}"}
    data["memory"] = {**data.get("memory", {}), "file": str(workdir / "memory.jsonl")}
    data["telemetry"] = {"otel": False}
    for name, agent in data["agents"].items():
        agent["model"] = f"scripted:{scripts.get(name, example / 'scripts' / f'{name}.json')}"
        agent["price"] = dict(DEMO_PRICE)
        agent["isolation"] = "process"
        watchdog = dict(agent.get("watchdog", {}))
        watchdog["hang_after_s"] = settings.hang_after_s
        agent["watchdog"] = watchdog
        agent["backoff"] = {"min_s": 0.05, "max_s": 0.5, "jitter": 0.2, "reset_after_s": 5.0}
    costly = data["agents"][settings.costly_agent]
    costly["budget"] = {**costly.get("budget", {}), "per_day_usd": settings.costly_cap_usd}
    data["approvals"] = [{"agent": "marketing", "tool": "post_update", "approvers": ["owner"]}]
    if alert_url is not None:
        data["alerts"] = [
            {"name": "local", "type": "webhook", "url": alert_url, "secret_env": ALERT_SECRET_ENV}
        ]
    data["tree"] = {**data.get("tree", {}), "intensity": 1000, "period": 1.0}
    for group in data["tree"].get("groups", {}).values():
        group["intensity"], group["period"] = 1000, 1.0  # the fault plan must never exhaust a supervisor
    return load_config_data(data, example / "beamish.toml")


#: What the company's memory knows before the demo starts (the reference server's JSONL format).
SEED_ENTITIES = [
    ("priorities", "plan", ["Keep spend under the monthly budget"]),
    ("budget", "finance", ["Monthly cap: $300"]),
    ("incidents", "log", []),
    ("marketing", "team", ["Posts go out at 14:00 UTC"]),
    ("legal", "team", []),
]


def seed_memory(path: Path) -> None:
    """Write the demo's starting knowledge graph (entities the agents add observations to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"type": "entity", "name": n, "entityType": t, "observations": o}, separators=(",", ":"))
        for n, t, o in SEED_ENTITIES
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def seed_facts() -> frozenset[Fact]:
    """The facts :func:`seed_memory` writes: what memory held before any agent wrote to it."""
    return frozenset(graph_facts({"entities": [{"name": n, "observations": o} for n, _, o in SEED_ENTITIES]}))


def copy_scripts(example: Path, workdir: Path, call_log: Path) -> dict[str, Path]:
    """Copies of the example's scripts in ``workdir``, each logging its calls and the faults it plays.

    The scripts are the demo's model: the 429s and 500s they play are faults the demo injects, and
    the call log is how the summary counts them (each restarted process plays them anew).
    """
    (workdir / "scripts").mkdir(parents=True, exist_ok=True)
    copies: dict[str, Path] = {}
    for source in sorted((example / "scripts").glob("*.json")):
        data = json.loads(source.read_text(encoding="utf-8"))
        data = {"turns": data} if isinstance(data, list) else data
        copy = workdir / "scripts" / source.name
        copy.write_text(json.dumps({**data, "call_log": str(call_log)}), encoding="utf-8")
        copies[source.stem] = copy
    return copies


def model_faults(calls: Path) -> dict[str, int]:
    """The faults the scripted model played, by kind and status (``server_error_500``, ``rate_limit_429``)."""
    found: dict[str, int] = {}
    if not calls.exists():
        return found
    for line in calls.read_text(encoding="utf-8").splitlines():
        try:
            fault = json.loads(line).get("fault")
        except (ValueError, AttributeError):
            continue  # the log only counts faults; a torn line costs a count, not the summary
        if isinstance(fault, dict):
            kind = str(fault.get("fault"))
            status = fault.get("status", 429 if kind == "rate_limit" else None)
            name = f"{kind}_{status}" if status is not None else kind
            found[name] = found.get(name, 0) + 1
    return dict(sorted(found.items()))


def _simulated_start() -> float:
    """Today at 08:55 UTC: the demo's accelerated clock starts just before the first schedule."""
    return datetime.now(UTC).replace(hour=8, minute=55, second=0, microsecond=0).timestamp()


async def scheduled_figures(store: Any, schedule_ids: list[str]) -> tuple[int, float | None]:
    """How many ticks fired, and succeeded runs over decided ticks, across every schedule."""
    fired = succeeded = decided = 0
    for sid in schedule_ids:
        rate = await store.read(lambda tx, sid=sid: success_rate(tx, sid, None))
        fired += rate.due
        succeeded += rate.succeeded
        decided += rate.succeeded + rate.failed + rate.missed
    return fired, (round(succeeded / decided, 4) if decided else None)


def hanging_agents(workdir: Path, hang_after_s: float) -> set[str]:
    """The agents whose planned hang is under way: the CTO from the moment its legacy-batch check
    stops answering until well after the watchdog should have killed it."""
    marker = workdir / "legacy-batch.hung"
    try:
        started = marker.stat().st_mtime
    except OSError:
        return set()
    return {"cto"} if time.time() - started < 5 * hang_after_s + 5 else set()


async def run_demo(
    settings: DemoSettings,
    *,
    parts_factory: Callable[[CompanyConfig, AcceleratedClock, Path], CompanyParts],
    on_tick: Callable[[Company, float], Any] | None = None,
) -> Summary:
    """Run the demo for ``settings.duration_s`` seconds and return its checked summary."""

    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="beamish-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["BEAMISH_EFFECT_LOG"] = str(workdir / "effects.jsonl")  # inherited by every agent process
    with LocalSink() as sink:
        os.environ[ALERT_SECRET_ENV] = sink.secret
        config = demo_config(workdir, settings, call_log=workdir / "model-calls.jsonl", alert_url=sink.url)
        summary, decisions = await _run(config, settings, workdir, parts_factory, on_tick)
    summary.approvals = dict(decisions)
    summary.alerts_sent = dict(sorted(sink.received.items()))
    return summary


async def _run(
    config: CompanyConfig,
    settings: DemoSettings,
    workdir: Path,
    parts_factory: Callable[[CompanyConfig, AcceleratedClock, Path], CompanyParts],
    on_tick: Callable[[Company, float], Any] | None,
) -> tuple[Summary, Counter[str]]:
    """The company under the fault plan, its posts decided through the public API as they wait."""
    import asyncio

    decisions: Counter[str] = Counter()
    seed_memory(config.memory_file)
    memory = MemoryRecord(config.memory_file, seed_facts())
    clock = AcceleratedClock(SIMULATED_S / settings.duration_s, _simulated_start())
    company = Company(config, parts=parts_factory(config, clock, workdir))
    faults: FaultPlan | None = None
    started = time.monotonic()
    try:
        await company.start()
        started = time.monotonic()  # the demo's duration counts from a running company
        faults = FaultPlan(
            processes=agent_processes(company.root),
            memory_file=config.memory_file,
            kill_every_s=settings.kill_every_s,
            corrupt_at_s=settings.duration_s / 3,
            seed=settings.seed,
            log=settings.log,
            spared=lambda: hanging_agents(workdir, settings.hang_after_s),
        )
        faults.start()
        for i in range(EXTRA_POSTS):
            await company.submit("marketing", f"Post today's update ({i + 1} of {EXTRA_POSTS} extra)")
        deadline = started + settings.duration_s
        while (now := time.monotonic()) < deadline:
            await _maybe_await(decide_posts(company, decisions))
            if on_tick is not None:
                await _maybe_await(on_tick(company, now - started))
            await asyncio.sleep(min(0.5, max(0.0, deadline - now)))
    finally:
        if faults is not None:
            await faults.stop()
        await company.stop()
    injected = {**(dict(faults.injected) if faults else {}), **model_faults(workdir / "model-calls.jsonl")}
    decisions["pending_at_end"] = await _pending(config)
    return await _summary(config, workdir, memory, injected, time.monotonic() - started), decisions


async def decide_posts(company: Company, decisions: Counter[str]) -> None:
    """The owner at work: approve each waiting post, but deny the second one, with a note."""
    for gate in await company.approvals():
        if decisions["approved"] == 1 and decisions["denied"] == 0:
            await company.deny(gate.gate_id, by="owner", note="not this one: it repeats yesterday's news")
            decisions["denied"] += 1
        else:
            await company.approve(gate.gate_id, by="owner")
            decisions["approved"] += 1


async def _pending(config: CompanyConfig) -> int:
    store = await open_store(config.store_url)
    try:
        return len(await pending_gates(store))
    finally:
        await store.close()


async def _summary(
    config: CompanyConfig, workdir: Path, memory: MemoryRecord, injected: dict[str, int], elapsed: float
) -> Summary:
    store = await open_store(config.store_url)
    try:
        return await summarize(
            store,
            workdir / "effects.jsonl",
            events=await _all_events(store),
            duration_s=elapsed,
            faults_injected=dict(sorted(injected.items())),
            scheduled=await scheduled_figures(store, [e[0] for e in schedule_entries(config)]),
            memory=memory,
            worlds=effect_worlds(config),
            caps=config_caps(config),
        )
    finally:
        await store.close()


def effect_worlds(config: CompanyConfig) -> dict[str, World | None]:
    """Every side-effect tool of the company, and the record that keeps its effects (or None)."""
    worlds: dict[str, World | None] = {}
    for agent in config.agents.values():
        tools = [t for ref in agent.tools for t in (MEMORY_TOOLS if ref == "memory" else (ref,))]
        for t in tools:
            if isinstance(t, Tool) and t.effect in ("once", "idempotent"):
                worlds[t.name] = world_of(t.name, t.fn.__module__)
    return worlds


async def _all_events(store: Any) -> list[Event]:
    out: list[Event] = []
    since = 0
    while True:
        batch = await store.events(since, limit=5000)
        out.extend(e for _, e in batch)
        if len(batch) < 5000:
            return out
        since = batch[-1][0]


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        with contextlib.suppress(Exception):
            await value
