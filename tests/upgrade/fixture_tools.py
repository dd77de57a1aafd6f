"""Module-level tools and entries for upgrade tests (importable by path)."""

from __future__ import annotations

import asyncio
from typing import Any

import beamish

#: Set by a test: ``hold`` waits for ``GATE`` after setting ``ENTERED`` (a run held mid-way).
GATE: asyncio.Event | None = None
ENTERED: asyncio.Event | None = None


@beamish.tool
async def hold(note: str) -> str:
    """Wait until the test lets the run go on."""
    assert GATE is not None and ENTERED is not None
    ENTERED.set()
    await GATE.wait()
    return f"held {note}"


async def explode(task: Any, ctx: Any) -> str:
    """An agent entry that crashes on every run."""
    raise RuntimeError("this version crashes on every run")
