"""Commands about live upgrades: ``beamish history AGENT``, ``beamish diff AGENT V1 V2``, ``beamish reload``.

``history`` and ``diff`` read the store; ``reload`` asks the running node, over its control socket,
to apply the config file (changed or not) to its live tree.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beamish.cli._common import ConfigOption, _open_store, load, run_async
from beamish.cli._company import ask_node
from beamish.cli._output import console, err
from beamish.cli._setup import preflight
from beamish.upgrade._versions import Versions
from beamish.upgrade._versions import diff as differences


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (history, diff, reload):
        app.command()(command)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def history(agent: str, config: ConfigOption = Path("beamish.toml")) -> None:
    """Every version of an agent's definition: who changed it, why, and what became of it."""
    cfg = load(config)

    async def go() -> list[Any]:
        store = await _open_store(cfg)
        try:
            return await Versions(store).history(agent)
        finally:
            await store.close()

    versions = run_async(go)
    if not versions:
        err.print(f"no versions of {agent!r} are recorded (a node records them when it starts)")
        raise typer.Exit(1)
    table = Table(title=f"{agent}: versions")
    for column in ("version", "state", "author", "reason", "changed", "at", "detail"):
        table.add_column(column)
    previous: dict[str, Any] | None = None
    for v in versions:
        changed = (
            ", ".join(k for k, _, _ in differences(previous, v.definition)) if previous is not None else "-"
        )
        previous = v.definition
        table.add_row(
            str(v.version), v.state, v.author, v.reason, changed, _when(v.created_at), v.detail or ""
        )
    console.print(table)


def diff(agent: str, v1: int, v2: int, config: ConfigOption = Path("beamish.toml")) -> None:
    """What differs between two versions of an agent's definition, key by key."""
    cfg = load(config)

    async def go() -> list[tuple[str, Any, Any]]:
        store = await _open_store(cfg)
        try:
            versions = Versions(store)
            old, new = await versions.get(agent, v1), await versions.get(agent, v2)
            return differences(old.definition, new.definition)
        finally:
            await store.close()

    changes = run_async(go)
    if not changes:
        console.print(f"{agent}: versions {v1} and {v2} are the same")
        return
    for key, old, new in changes:
        console.print(f"[bold]{key}[/]", markup=True)
        console.print(f"  - v{v1}: {json.dumps(old, sort_keys=True)}", markup=False)
        console.print(f"  + v{v2}: {json.dumps(new, sort_keys=True)}", markup=False)


def reload(
    new_config: Annotated[
        Path | None,
        typer.Argument(metavar="[CONFIG]", help="The changed config (or -c; default beamish.toml)."),
    ] = None,
    config: ConfigOption = Path("beamish.toml"),
    reason: Annotated[str, typer.Option(help="Why: kept in each agent's history.")] = "beamish reload",
) -> None:
    """Apply a changed config to the running node: new children start, removed ones stop.

    Changed agents take their new version between runs (rolled back by themselves if they do worse).
    """
    # a config that cannot run is refused before the running node sees it
    cfg = preflight(new_config or config, refused="nothing was reloaded")
    request = {
        "op": "reload",
        "config": str(cfg.path),
        "author": f"person:{getpass.getuser()}",
        "reason": reason,
    }
    report = ask_node(cfg, request, what="reload", timeout=60.0)
    for key in ("added", "removed", "upgraded", "not_applied"):
        for where in report.get(key, []):
            console.print(f"{key.replace('_', ' ')}: {where}")
    console.print(f"reloaded ({len(report.get('unchanged', []))} unchanged)")
