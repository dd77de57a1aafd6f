"""``beamish demo``: the solo company offline, under a fault plan, ending in a checked summary.

The company from ``examples/solo_company`` runs on the scripted model (named as such everywhere),
with SQLite in a temporary folder, the shared memory server, and its schedules on an accelerated
clock (a working day, 08:55 to 18:55 UTC, in ``duration`` seconds). While it runs, the fault plan
kills agent processes and corrupts the memory file; the scripts play 429s, 500s, a loop, a costly
agent and a hung tool. At the end the journal is read back and checked against the tools' effect log.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish.company._company import Company
from beamish.company._config import CompanyConfig, load_config_data, schedule_entries
from beamish.company._examples import solo_company_dir
from beamish.company._faults import AcceleratedClock, FaultPlan, agent_processes
from beamish.company._summary import Summary, summarize
from beamish.company._tree import CompanyParts

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


def demo_config(workdir: Path, settings: DemoSettings, example: Path | None = None) -> CompanyConfig:
    """The solo company's config, pointed at ``workdir`` and the scripted model, with the demo's limits."""
    example = example or solo_company_dir()
    data = tomllib.loads((example / "beamish.toml").read_text(encoding="utf-8"))
    data["store"] = {"url": f"sqlite:///{workdir / 'beamish.db'}"}
    data["memory"] = {**data.get("memory", {}), "file": str(workdir / "memory.jsonl")}
    data["telemetry"] = {"otel": False}
    for name, agent in data["agents"].items():
        agent["model"] = f"scripted:{example / 'scripts' / f'{name}.json'}"
        agent["price"] = dict(DEMO_PRICE)
        agent["isolation"] = "process"
        watchdog = dict(agent.get("watchdog", {}))
        watchdog["hang_after_s"] = settings.hang_after_s
        agent["watchdog"] = watchdog
        agent["backoff"] = {"min_s": 0.05, "max_s": 0.5, "jitter": 0.2, "reset_after_s": 5.0}
    costly = data["agents"][settings.costly_agent]
    costly["budget"] = {**costly.get("budget", {}), "per_day_usd": settings.costly_cap_usd}
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
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"type": "entity", "name": n, "entityType": t, "observations": o}, separators=(",", ":"))
        for n, t, o in SEED_ENTITIES
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _simulated_start() -> float:
    """Today at 08:55 UTC: the demo's accelerated clock starts just before the first schedule."""
    return datetime.now(UTC).replace(hour=8, minute=55, second=0, microsecond=0).timestamp()


async def scheduled_figures(store: Any, schedule_ids: list[str]) -> tuple[int, float | None]:
    """How many ticks fired, and succeeded runs over decided ticks, across every schedule."""
    from beamish.schedule._history import success_rate

    fired = succeeded = decided = 0
    for sid in schedule_ids:
        rate = await store.read(lambda tx, sid=sid: success_rate(tx, sid, None))
        fired += rate.due
        succeeded += rate.succeeded
        decided += rate.succeeded + rate.failed + rate.missed
    return fired, (round(succeeded / decided, 4) if decided else None)


async def run_demo(
    settings: DemoSettings,
    *,
    parts_factory: Callable[[CompanyConfig, AcceleratedClock, Path], CompanyParts],
    on_tick: Callable[[Company, float], Any] | None = None,
) -> Summary:
    """Run the demo for ``settings.duration_s`` seconds and return its checked summary."""
    import asyncio

    from beamish.journal import open_store

    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="beamish-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    effect_log = workdir / "effects.jsonl"
    os.environ["BEAMISH_EFFECT_LOG"] = str(effect_log)  # inherited by every agent process
    config = demo_config(workdir, settings)
    seed_memory(config.memory_file)
    clock = AcceleratedClock(SIMULATED_S / settings.duration_s, _simulated_start())
    parts = parts_factory(config, clock, workdir)
    company = Company(config, parts=parts)
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
        )
        faults.start()
        deadline = started + settings.duration_s
        while (now := time.monotonic()) < deadline:
            if on_tick is not None:
                await _maybe_await(on_tick(company, now - started))
            await asyncio.sleep(min(0.5, max(0.0, deadline - now)))
    finally:
        if faults is not None:
            await faults.stop()
        await company.stop()
    elapsed = time.monotonic() - started
    store = await open_store(config.store_url)
    try:
        events = await _all_events(store)
        scheduled = await scheduled_figures(store, [e[0] for e in schedule_entries(config)])
        return await summarize(
            store,
            effect_log,
            events=events,
            duration_s=elapsed,
            faults_injected=dict(faults.injected) if faults else {},
            scheduled=scheduled,
            logged_tools=logged_tools(config),
        )
    finally:
        await store.close()


def logged_tools(config: CompanyConfig) -> set[str]:
    """The side-effect tools of the company's own modules: the ones that keep the effect log."""
    from beamish.agent._tools import Tool

    return {
        t.name
        for agent in config.agents.values()
        for t in agent.tools
        if isinstance(t, Tool)
        and t.effect in ("once", "idempotent")
        and not t.fn.__module__.startswith("beamish.")  # beamish's own (propose_upgrade) keep no log
    }


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
