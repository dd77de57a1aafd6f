"""The solo company's tools: what its eight agents can do to the world.

Every tool with a side effect writes it to an *effect log* (one JSON line per effect, appended and
fsynced before the tool returns). In the offline demo that log is the ground truth the journal is
checked against: an effect in the log that the journal lost, or the same effect twice, is a bug the
demo's summary reports. With real models the same log is the company's outbox
(``BEAMISH_EFFECT_LOG``, default ``outbox/effects.jsonl`` beside where the company runs).

``once`` tools (posting, invoicing, approving spend) never deduplicate themselves, as the real
services they stand for would not: only the journal keeps them from happening twice. Their
``reconcile`` reads the log to learn whether an interrupted call took effect. ``idempotent`` tools
dedupe by the idempotency key, as a service that honours ``Idempotency-Key`` does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import beamish
from beamish import ToolContext


def effect_log() -> Path:
    return Path(os.environ.get("BEAMISH_EFFECT_LOG", "outbox/effects.jsonl"))


def _append(entry: dict[str, Any]) -> None:
    path = effect_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one short write with O_APPEND: lines never interleave
        os.fsync(fd)
    finally:
        os.close(fd)


def read_effects(path: Path | None = None) -> list[dict[str, Any]]:
    """Every effect recorded so far (a torn last line, from a kill mid-write, is ignored)."""
    path = path or effect_log()
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _applied(key: str) -> dict[str, Any] | None:
    for entry in read_effects():
        if entry["key"] == key and entry["status"] == "applied":
            return entry
    return None


def _effect(ctx: ToolContext, tool: str, result: str, **args: Any) -> str:
    _append(
        {
            "key": ctx.idempotency_key,
            "tool": tool,
            "agent": ctx.agent,
            "status": "applied",
            "args": args,
            "result": result,
            "at": time.time(),
        }
    )
    return result


def _reconcile(key: str) -> str | None:
    entry = _applied(key)
    return None if entry is None else str(entry["result"])


@beamish.tool(effect="once")
def post_update(text: str, ctx: ToolContext) -> str:
    """Publish a post on the company's social accounts.

    Args:
        text: The post, at most 280 characters.
    """
    return _effect(ctx, "post_update", f"posted: {text[:280]}", text=text[:280])


post_update.reconcile(_reconcile)


@beamish.tool(effect="once")
def send_invoice(customer: str, amount_usd: float, ctx: ToolContext) -> str:
    """Send an invoice to a customer.

    Args:
        customer: Who pays.
        amount_usd: How much, in US dollars.
    """
    return _effect(
        ctx,
        "send_invoice",
        f"invoice sent to {customer} for ${amount_usd:.2f}",
        customer=customer,
        amount_usd=amount_usd,
    )


send_invoice.reconcile(_reconcile)


@beamish.tool(effect="once")
def approve_spend(item: str, amount_usd: float, ctx: ToolContext) -> str:
    """Approve a company expense (the CFO's signature).

    Args:
        item: What is bought.
        amount_usd: Its price in US dollars.
    """
    return _effect(
        ctx, "approve_spend", f"approved {item} (${amount_usd:.2f})", item=item, amount_usd=amount_usd
    )


approve_spend.reconcile(_reconcile)


@beamish.tool(effect="idempotent")
def record_transaction(description: str, amount_usd: float, ctx: ToolContext) -> str:
    """Book a transaction in the company's ledger (deduplicated by idempotency key).

    Args:
        description: What the money was for.
        amount_usd: Positive for income, negative for expenses.
    """
    if _applied(ctx.idempotency_key) is not None:
        _append(
            {
                "key": ctx.idempotency_key,
                "tool": "record_transaction",
                "agent": ctx.agent,
                "status": "deduplicated",
                "at": time.time(),
            }
        )
        return f"booked: {description}"
    return _effect(
        ctx, "record_transaction", f"booked: {description}", description=description, amount_usd=amount_usd
    )


@beamish.tool(effect="idempotent")
def create_task(title: str, owner: str, ctx: ToolContext) -> str:
    """Put a task on the company board (deduplicated by idempotency key).

    Args:
        title: What needs doing.
        owner: Which agent owns it.
    """
    if _applied(ctx.idempotency_key) is not None:
        _append(
            {
                "key": ctx.idempotency_key,
                "tool": "create_task",
                "agent": ctx.agent,
                "status": "deduplicated",
                "at": time.time(),
            }
        )
        return f"task exists: {title}"
    return _effect(ctx, "create_task", f"task created: {title} → {owner}", title=title, owner=owner)


@beamish.tool
def review_contract(name: str) -> str:
    """Read a contract and list its risky clauses.

    Args:
        name: The contract's name.
    """
    return f"{name}: clause 7 (unlimited liability) and clause 12 (auto-renewal) need changes"


@beamish.tool
def run_checks(target: str, ctx: ToolContext) -> str:
    """Run the CTO's health checks against a system.

    Args:
        target: Which system, e.g. "website" or "billing".
    """
    marker = effect_log().parent / "legacy-batch.hung"
    if target == "legacy-batch" and not marker.exists():
        # The legacy batch system stops answering once (the first call ever): the watchdog must
        # notice, kill the agent's process and let the run resume from its journal.
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        time.sleep(3600)
    return f"{target}: all checks passed"


@beamish.tool
def fetch_bank_feed(account: str) -> str:
    """Fetch the bank account's transactions since the last import.

    Args:
        account: The account, e.g. "operating".
    """
    state = effect_log().parent / "bank-feed.imported"
    first = not state.exists()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.touch()
    return _bank_export(account, since="the beginning" if first else "the last import")


def _bank_export(account: str, since: str) -> str:
    """The bank's exporter, a command-line program's code reused as a library.

    It has a bug: on a statement it cannot parse it calls ``sys.exit(2)``, as command-line programs
    do, instead of raising, and the first statement of an account's history is such a one. The
    agent's process ends (``Crashed``), its supervisor restarts it, and the run resumes from the
    journal; the next import starts after that statement and goes through.
    """
    if since == "the beginning":
        sys.exit(2)
    return f"{account}: 2 new transactions since {since} (Stripe payout $412.50, Acme Ltd card fee -$4.20)"


@beamish.tool
def web_search(query: str) -> str:
    """Search the web.

    Args:
        query: What to look for.
    """
    return f"3 results for {query!r}: nothing new since yesterday"


@beamish.tool
def write_plan(title: str, body: str) -> str:
    """Draft a plan document (the CEO's notes; no side effect until someone acts on it).

    Args:
        title: The plan's title.
        body: The plan.
    """
    return f"drafted {title!r} ({len(body)} characters)"
