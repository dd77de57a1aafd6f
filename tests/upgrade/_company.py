"""A small company written as a beamish.toml, for reload and upgrade tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish.company import CompanyConfig, load_config


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(v)


def write_company(
    path: Path, agents: dict[str, dict[str, Any]], groups: dict[str, list[str]] | None = None
) -> CompanyConfig:
    """Write ``beamish.toml`` at ``path`` (a SQLite store beside it, no memory) and load it."""
    lines = ["[store]", 'url = "sqlite:///journal.db"', "[memory]", "enabled = false"]
    lines += ["[tree]", "intensity = 1000", "period = 1.0"]
    for group, members in (groups or {}).items():
        lines += [f"[tree.groups.{group}]", f"agents = {_value(members)}", "intensity = 1000", "period = 1.0"]
    for name, fields in agents.items():
        lines.append(f"[agents.{name}]")
        base = {
            "isolation": "task",
            "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            "backoff": {"min_s": 0.01, "max_s": 0.05, "jitter": 0.0, "reset_after_s": 5.0},
        }
        lines += [f"{k} = {_value(v)}" for k, v in {**base, **fields}.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def script(path: Path, turns: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"turns": turns}), encoding="utf-8")
    return f"scripted:{path.name}"


async def next_event(
    company: Any, kind: str, where: Callable[[Event], bool] = lambda e: True, timeout: float = 30.0
) -> Event:
    """The first event of ``kind`` (matching ``where``) the running company publishes."""

    async def find() -> Event:
        async for event in company.events(replay=500):
            if event.kind == kind and where(event):
                return event
        raise AssertionError(f"the event stream ended before a {kind} event")

    return await asyncio.wait_for(find(), timeout)
