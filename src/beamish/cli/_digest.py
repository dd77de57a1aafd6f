"""``beamish digest --since 24h``: the digest the company mails each morning, printed now."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from beamish.cli._common import ConfigOption, JsonOption, fail, load, with_store
from beamish.cli._journal import parse_duration
from beamish.cli._output import console, emit_json
from beamish.company._digest import build_digest


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    app.command()(digest)


def digest(
    config: ConfigOption = Path("beamish.toml"),
    since: Annotated[str, typer.Option("--since", help="How far back: an age such as 24h or 7d.")] = "24h",
    as_html: Annotated[bool, typer.Option("--html", help="Print the HTML version.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Runs by outcome, spend against caps, failures, what waits for you, upgrades, schedules."""
    try:
        seconds = parse_duration(since).total_seconds()
    except typer.BadParameter:
        raise fail(f"--since: expected an age such as 24h or 7d, got {since!r}", 2) from None
    cfg = load(config)
    now = time.time()
    found = with_store(cfg, lambda store: build_digest(store, cfg, now - seconds, now))
    if as_json:
        emit_json(found.to_json())
    else:
        console.print(found.html() if as_html else found.text(), end="")
