"""Module-level tools for semantic-supervision tests (importable by path, so process-isolated agents
find them). State lives in files, so it survives the agent process being killed and restarted."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

import beamish

STATE_DIR = Path(tempfile.gettempdir()) / "beamish-semantic-test-state"


def marker(run_id: str, what: str) -> Path:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return STATE_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}.{what}"


@beamish.tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    return f"page {url}"


@beamish.tool
async def compile_report(ctx: beamish.ToolContext) -> str:
    """Compile a report. The first time per run it goes silent (and writes its pid to a marker)."""
    hung = marker(ctx.run_id, "hung")
    if not hung.exists():
        partial = hung.with_name(hung.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(hung)  # whole or absent: the test reads the pid as soon as the file exists
        await asyncio.Event().wait()
    return "report ready"


class WrappedHooks:
    """Hooks around other hooks (as a tracing layer would be): everything is forwarded to ``inner``."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def wrapped_hooks(spec: object, store: object, clock: object) -> WrappedHooks:
    """A hooks factory (by import path) that wraps the semantic guard."""
    from beamish.agent._guard import make_hooks

    return WrappedHooks(make_hooks(spec, store, clock))  # type: ignore[arg-type]


class CrashingHooks(WrappedHooks):
    """The semantic guard, with a bug: its ``after_step`` raises on the tool named ``explode``."""

    async def after_step(self, run: object, kind: str, name: str, result: str, is_error: bool) -> object:
        if name == "explode":
            raise RuntimeError("a bug in the loop's machinery")
        return await self.inner.after_step(run, kind, name, result, is_error)  # type: ignore[attr-defined]


def crashing_hooks(spec: object, store: object, clock: object) -> CrashingHooks:
    from beamish.agent._guard import make_hooks

    return CrashingHooks(make_hooks(spec, store, clock))  # type: ignore[arg-type]


@beamish.tool
async def poll_queue(ctx: beamish.ToolContext) -> str:
    """Take the next message off the queue: a new one every time (counted per run, in a file)."""
    counter = marker(ctx.run_id, "polled")
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return f"message {n} of the queue"
