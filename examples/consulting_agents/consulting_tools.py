"""Tools of the consulting example: a ledger to read and an announcement that must happen once.

Module-level ``@beamish.tool`` functions, so agents in their own processes import them by path.
The announcement appends to ``announcements.log`` next to the journal: run the example twice with
the same run ids and it is still announced once.
"""

from __future__ import annotations

import os
from pathlib import Path

import beamish

LEDGER = {"q3-revenue": "412k USD, up 18% on Q2", "q3-costs": "301k USD", "cash": "1.2M USD"}


def _log() -> Path:
    return Path(os.environ.get("CONSULTING_DIR", ".")) / "announcements.log"


@beamish.tool
def read_ledger(entry: str) -> str:
    """Read one entry of the company ledger.

    Args:
        entry: One of q3-revenue, q3-costs, cash.
    """
    return LEDGER.get(entry, f"no ledger entry {entry!r}; entries: {', '.join(LEDGER)}")


@beamish.tool(effect="once")
def announce(text: str, ctx: beamish.ToolContext) -> str:
    """Announce a decision to the whole company (never twice)."""
    with _log().open("a") as f:
        f.write(f"{ctx.idempotency_key}\t{text}\n")
    return "announced"


@announce.reconcile
def _announced(key: str) -> str | None:
    """After a crash: did the announcement with this key go out?"""
    path = _log()
    if path.exists() and any(line.startswith(f"{key}\t") for line in path.read_text().splitlines()):
        return "announced"
    return None
