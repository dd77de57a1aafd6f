"""The side effect the cluster tests count: one line per real execution, in a shared log file.

``effect="once"`` with a ``reconcile`` that reads the log: after a crash between the journal's
intent and done, the new holder asks the log whether the effect happened instead of repeating it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import beamish

#: Kept by a node process: unit → the lease epoch its copy here was started under, so each effect
#: line names the node, the unit and the lease epoch it acted under.
LEASES: dict[str, int] = {}


def _log() -> Path:
    return Path(os.environ["BEAMISH_TEST_EFFECT_LOG"])


@beamish.tool(effect="once")
def post(text: str, ctx: beamish.ToolContext) -> str:
    """Post ``text`` (append one line keyed by the idempotency key)."""
    with _log().open("a") as f:  # one write() of one short line: O_APPEND keeps lines whole
        epoch = LEASES.get(ctx.agent, -1)
        node = os.environ.get("BEAMISH_TEST_NODE", "-")
        f.write(f"{ctx.idempotency_key} {os.getpid()} {node} {ctx.agent} {epoch} {time.time():.6f}\n")
    return f"posted {ctx.idempotency_key}"


@post.reconcile
def _posted(key: str) -> str | None:
    lines = _log().read_text().splitlines() if _log().exists() else []
    return f"posted {key}" if any(line.split()[0] == key for line in lines) else None


def effects() -> list[str]:
    """Idempotency keys of every effect executed so far, in order (duplicates kept)."""
    path = _log()
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []
