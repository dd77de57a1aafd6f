"""``beamish schedules …``: what the scheduler did — each schedule's record, a tick-by-tick history,
and retention of that history. Read from the store, so it works whether or not a node is running."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beamish.cli._common import ConfigOption, JsonOption, _open_store, load, run_async
from beamish.cli._journal import parse_duration
from beamish.cli._output import console, emit_json, err
from beamish.schedule._history import fire_history, list_schedules, prune_fires

schedules_app = typer.Typer(
    name="schedules",
    help="Schedules: list them, one schedule's ticks, prune old ticks.",
    no_args_is_help=True,
)


def _table(*columns: str) -> Table:
    """A table that wraps long values instead of cutting them (run ids must stay copyable)."""
    table = Table()
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@schedules_app.command("list")
def list_(config: ConfigOption = Path("beamish.toml"), as_json: JsonOption = False) -> None:
    """Every stored schedule: cron, zone, policy, next due time and success rate."""
    cfg = load(config)

    async def go() -> Any:
        store = await _open_store(cfg)
        try:
            return await store.read(list_schedules)
        finally:
            await store.close()

    infos = run_async(go)
    if as_json:
        emit_json([_info_json(info) for info in infos])
        return
    if not infos:
        err.print("no schedules stored yet (they are stored when the company first runs)")
        return
    table = _table("schedule", "agent", "cron", "tz", "misfire", "next due", "fired", "missed", "success")
    for info in infos:
        rate = info.rate.rate
        table.add_row(
            info.schedule_id,
            info.agent,
            str(info.spec.get("cron")),
            str(info.spec.get("tz")),
            str(info.spec.get("misfire")),
            _when(info.next_due_at) if info.enabled else "disabled",
            str(info.rate.due - info.rate.missed),
            str(info.rate.missed),
            "-" if rate is None else f"{rate:.1%}",
        )
    console.print(table)


def _info_json(info: Any) -> dict[str, Any]:
    return {
        "schedule_id": info.schedule_id,
        "agent": info.agent,
        "spec": info.spec,
        "enabled": info.enabled,
        "next_due_at": info.next_due_at,
        "fired": info.rate.due - info.rate.missed,
        "missed": info.rate.missed,
        "success_rate": info.rate.rate,
    }


@schedules_app.command()
def history(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    config: ConfigOption = Path("beamish.toml"),
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many of the latest ticks to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The latest ticks of one schedule: due, fired or missed, late by, and how its run ended."""
    cfg = load(config)

    async def go() -> Any:
        store = await _open_store(cfg)
        try:
            return await store.read(lambda tx: fire_history(tx, schedule_id, limit))
        finally:
            await store.close()

    records = run_async(go)
    if as_json and records:
        emit_json([dataclasses.asdict(r) for r in records])
        return
    if not records:
        known = [
            s.id or f"{name}-{i}" for name, a in cfg.agents.items() for i, s in enumerate(a.section.schedules)
        ]
        if schedule_id not in known:
            err.print(f"no schedule {schedule_id!r} in {config} (schedules: {', '.join(known) or 'none'})")
        else:
            err.print(f"no ticks recorded for schedule {schedule_id!r} yet")
        raise typer.Exit(1)
    table = _table("nominal", "due", "action", "late by", "outcome", "run")
    for r in records:
        late = "-" if r.late_s is None else f"{r.late_s:.1f}s"
        table.add_row(r.nominal_fire_time, _when(r.due_at), r.action, late, r.outcome, r.run_id or "-")
    console.print(table)


@schedules_app.command()
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="Age, e.g. 90d, 12h.")] = "90d",
    config: ConfigOption = Path("beamish.toml"),
) -> None:
    """Forget ticks due more than --older-than ago (live and undispatched ticks are kept)."""
    age = parse_duration(older_than)
    cfg = load(config)

    async def go() -> int:
        store = await _open_store(cfg)
        try:
            before = store.clock.time() - age.total_seconds()
            n: int = await store.run(lambda tx: prune_fires(tx, before))
            return n
        finally:
            await store.close()

    console.print(f"pruned {run_async(go)} schedule ticks")
