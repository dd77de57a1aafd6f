"""``beamish journal …``: retention of the journal."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from beamish.cli._common import ConfigOption, _open_store, load, run_async
from beamish.cli._output import console, err

journal_app = typer.Typer(name="journal", help="The journal: retention.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` → a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"expected a duration such as 30d, 12h or 90m, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@journal_app.command()
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="Age, e.g. 30d, 12h.")] = "30d",
    keep_failed: Annotated[
        bool,
        typer.Option(
            "--keep-failed/--drop-failed", help="Keep failed runs (to look into) or delete them too."
        ),
    ] = True,
    config: ConfigOption = Path("beamish.toml"),
) -> None:
    """Delete finished runs (and their steps) and events older than --older-than.

    Queued, running, paused and needs-attention runs are never touched; the ledger (spend) is kept.
    There is no dry run: what was deleted is printed.
    """
    age = parse_duration(older_than)
    cfg = load(config)

    async def go() -> Any:
        store = await _open_store(cfg)
        try:
            with console.status(f"pruning runs finished more than {older_than} ago…"):
                return await store.prune(age, keep_failed=keep_failed)
        finally:
            await store.close()

    report = run_async(go)
    console.print(
        f"pruned {report.runs} runs, {report.steps} steps, {report.events} events, {report.payloads} payloads"
    )
    if not (report.runs or report.steps or report.events or report.payloads):
        err.print("(nothing was old enough)")
