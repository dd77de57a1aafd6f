"""The digest: what happened since a time, for a person reading it over coffee.

Runs by outcome, spend per agent against its daily cap, failures with their reasons, approvals and
questions still waiting, upgrades and rollbacks, each schedule's success rate, and the alerts quiet
hours held. ``beamish digest --since 24h`` prints it; the company's alerter mails it on a cron
(default ``0 8 * * *`` in the company's time zone) as plain text and HTML.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from beamish.agent._gates import pending_gates
from beamish.company._config import CompanyConfig
from beamish.company._outbox import outbox_rows
from beamish.journal._sql import SyncTx
from beamish.schedule._history import list_schedules, success_rate

DEFAULT_CRON = "0 8 * * *"


@dataclass
class Digest:
    """The figures of one digest (``to_json``, ``text``, ``html``)."""

    since: float
    until: float
    tz: str
    runs: dict[str, int] = field(default_factory=dict)
    spend: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    held_alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def _when(self, at: float) -> str:
        return datetime.fromtimestamp(at, ZoneInfo(self.tz)).strftime("%Y-%m-%d %H:%M")

    def sections(self) -> list[tuple[str, list[str]]]:
        """Each section's title and lines (the text and the HTML share them)."""
        runs = ", ".join(f"{n} {status}" for status, n in sorted(self.runs.items())) or "no runs"
        spend = [f"{s['agent']}: ${s['spent_usd']:.4f}{_cap(s['cap_per_day_usd'])}" for s in self.spend]
        failures = [f"{f['run_id']} ({f['agent']}): {f['reason']}" for f in self.failures]
        waiting = [
            f"{w['gate_id']} {w['kind']} {w['agent']}: {w['what']} (since {self._when(w['created_at'])})"
            for w in self.waiting
        ]
        upgrades = [f"{u['kind']} {u['agent']} {u['detail']}" for u in self.upgrades]
        schedules = [f"{s['schedule_id']} ({s['agent']}): {_rate(s)}" for s in self.schedules]
        held = [f"{a['severity']} {a['kind']} {a['subject']}" for a in self.held_alerts]
        return [
            ("Runs", [runs]),
            ("Spend", spend),
            ("Failures", failures or ["none"]),
            ("Waiting for you", waiting or ["nothing"]),
            ("Upgrades and rollbacks", upgrades or ["none"]),
            ("Schedules", schedules or ["none"]),
            ("Held during quiet hours", held or ["none"]),
        ]

    def text(self) -> str:
        lines = [f"beamish digest, {self._when(self.since)} to {self._when(self.until)} ({self.tz})"]
        for title, items in self.sections():
            lines += ["", title] + [f"  {item}" for item in items]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        parts = [f"<h2>beamish digest, {self._when(self.since)} to {self._when(self.until)}</h2>"]
        for title, items in self.sections():
            parts.append(f"<h3>{html.escape(title)}</h3><ul>")
            parts += [f"<li>{html.escape(item)}</li>" for item in items]
            parts.append("</ul>")
        return "\n".join(parts)


def _cap(cap: float | None) -> str:
    return f" of ${cap:.2f}/day" if cap else ""


def _rate(s: dict[str, Any]) -> str:
    shown = "no ticks" if s["rate"] is None else f"{s['rate']:.0%}"
    return f"{shown} ({s['succeeded']} ok, {s['failed']} failed, {s['missed']} missed)"


def _runs_and_failures(tx: SyncTx, since: float) -> tuple[dict[str, int], list[dict[str, Any]]]:
    rows = tx.fetchall(
        "SELECT status, COUNT(*) AS n FROM runs WHERE updated_at >= ? GROUP BY status", (since,)
    )
    failed = tx.fetchall(
        "SELECT run_id, agent, reason FROM runs WHERE status IN ('failed', 'needs_attention') "
        "AND updated_at >= ? ORDER BY updated_at DESC LIMIT 20",
        (since,),
    )
    failures = []
    for r in failed:
        reason = json.loads(r["reason"]) if r["reason"] else {}
        why = next((reason[k] for k in ("error", "detail", "reason", "pattern") if reason.get(k)), None)
        why = f"{reason.get('kind', 'failed')}: {why}" if why else str(reason.get("kind", "unknown"))
        failures.append({"run_id": r["run_id"], "agent": r["agent"], "reason": str(why)[:200]})
    return {str(r["status"]): int(r["n"]) for r in rows}, failures


def _upgrades(tx: SyncTx, since: float) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT kind, subject, body FROM events WHERE at >= ? "
        "AND kind IN ('agent.upgraded', 'agent.rolled_back') ORDER BY id",
        (since,),
    )
    out = []
    for r in rows:
        data = json.loads(r["body"]).get("data", {})
        versions = [f"v{data[k]}" for k in ("previous", "version") if data.get(k) is not None]
        detail = " → ".join(versions) + (f" ({data['reason']})" if data.get("reason") else "")
        out.append({"kind": r["kind"].split(".")[1], "agent": r["subject"], "detail": detail})
    return out


def _schedules(tx: SyncTx, since: float) -> list[dict[str, Any]]:
    out = []
    for info in list_schedules(tx):
        rate = success_rate(tx, info.schedule_id, since)
        out.append({
            "schedule_id": info.schedule_id, "agent": info.agent, "rate": rate.rate,
            "succeeded": rate.succeeded, "failed": rate.failed, "missed": rate.missed,
        })  # fmt: skip
    return out


async def build_digest(store: Any, config: CompanyConfig, since: float, until: float) -> Digest:
    """Every figure of the digest from the store (one read per part)."""
    digest = Digest(since=since, until=until, tz=config.file.company.timezone)
    digest.runs, digest.failures = await store.read(lambda tx: _runs_and_failures(tx, since))
    for name, agent in config.agents.items():
        cap = agent.section.budget.per_day_usd
        digest.spend.append(
            {"agent": name, "spent_usd": await store.spend(name, since=since), "cap_per_day_usd": cap}
        )
    for gate in await pending_gates(store):
        what = (
            f"{gate.tool}({json.dumps(gate.args, sort_keys=True)})"
            if gate.kind == "approval"
            else str(gate.args.get("question"))
        )
        digest.waiting.append(
            {
                "gate_id": gate.gate_id,
                "kind": gate.kind,
                "agent": gate.agent,
                "what": what,
                "created_at": gate.created_at,
            }
        )
    digest.upgrades = await store.read(lambda tx: _upgrades(tx, since))
    digest.schedules = await store.read(lambda tx: _schedules(tx, since))
    held = await store.read(lambda tx: outbox_rows(tx, "held"))
    digest.held_alerts = [
        {k: r[k] for k in ("kind", "severity", "subject")} for r in held if r["created_at"] >= since
    ]
    return digest


def digest_builder(config: CompanyConfig) -> Any:
    """``build(store, since, until)`` for the alerter's scheduled digests."""

    async def build(store: Any, since: float, until: float) -> Digest:
        return await build_digest(store, config, since, until)

    return build
