"""Module-level tools for agent tests (importable by path, so process-isolated agents find them).

Effects are appended to a log file per run under one shared directory, so a test counts executions
across processes and restarts. A ``.hold`` file for a run makes the next tool that honours it write a
``.holding`` marker (with its pid) and block until a ``.release`` file appears — once: the hold file
is removed first — so a test can kill the agent at a known point (``before`` or ``after`` the effect).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

import beamish

LOG_DIR = Path(tempfile.gettempdir()) / "beamish-agent-test-effects"


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)


def effect_log(run_id: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{_safe(run_id)}.log"


def hold_file(run_id: str) -> Path:
    return effect_log(run_id).with_suffix(".hold")


def holding_file(run_id: str) -> Path:
    return effect_log(run_id).with_suffix(".holding")


def release_file(run_id: str) -> Path:
    return effect_log(run_id).with_suffix(".release")


def effects(run_id: str) -> list[str]:
    path = effect_log(run_id)
    return path.read_text().splitlines() if path.exists() else []


def _append(run_id: str, line: str) -> None:
    with effect_log(run_id).open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


async def _hold_if_asked(run_id: str, when: str) -> None:
    hold = hold_file(run_id)
    if hold.exists() and hold.read_text().strip() == when:
        hold.unlink()
        marker = holding_file(run_id)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(marker)  # atomic: a reader sees the pid or nothing
        while not release_file(run_id).exists():  # held until the test releases it (or kills us)
            await asyncio.sleep(0.01)


@beamish.tool
async def lookup(topic: str, ctx: beamish.ToolContext) -> str:
    """Look up a fact about a topic.

    Args:
        topic: What to look up.
    """
    await _hold_if_asked(ctx.run_id, f"lookup:{topic}")
    return f"fact about {topic}"


@beamish.tool(effect="idempotent")
def save_note(note: str, ctx: beamish.ToolContext) -> str:
    """Save a note (deduplicated by the idempotency key)."""
    if f"save {ctx.idempotency_key}" not in effects(ctx.run_id):
        _append(ctx.run_id, f"save {ctx.idempotency_key}")
    return f"saved {note!r}"


@beamish.tool(effect="once")
async def publish(text: str, ctx: beamish.ToolContext) -> str:
    """Publish text to the world: must never happen twice."""
    await _hold_if_asked(ctx.run_id, "before")
    _append(ctx.run_id, f"publish {ctx.idempotency_key} {text}")
    await _hold_if_asked(ctx.run_id, "after")
    return f"published {text!r}"


@publish.reconcile
def _publish_reconcile(key: str) -> str | None:
    # the key is ``run_id:seq`` or, after a divergence, ``run_id:seq:generation``
    for run_id in {key.rsplit(":", 1)[0], key.rsplit(":", 2)[0]}:
        for line in effects(run_id):
            if line.startswith(f"publish {key} "):
                return f"published {line.split(' ', 2)[2]!r} (reconciled)"
    return None


@beamish.tool(effect="once")
async def wire_money(amount: int, ctx: beamish.ToolContext) -> str:
    """Send money. Has no reconcile: a lost outcome needs a human."""
    await _hold_if_asked(ctx.run_id, "before")
    _append(ctx.run_id, f"wire {ctx.idempotency_key} {amount}")
    await _hold_if_asked(ctx.run_id, "after")
    return f"sent {amount}"


@beamish.tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


def stall_file(run_id: str) -> Path:
    return effect_log(run_id).with_suffix(".stall")


@beamish.tool
async def stall_loop(seconds: float, ctx: beamish.ToolContext) -> str:
    """Block the event loop outright (a misbehaving tool) — once per run, if the test asked."""
    marker = stall_file(ctx.run_id)
    if marker.exists():
        marker.unlink()
        time.sleep(seconds)  # deliberately blocks the whole process, heartbeats included
    return "ran without stalling"


@beamish.tool(effect="once", approval="required")
async def post(text: str, ctx: beamish.ToolContext) -> str:
    """Post to social media: waits for a person's approval, and must never happen twice."""
    _append(ctx.run_id, f"post {ctx.idempotency_key} {text}")
    return f"posted {text!r}"
