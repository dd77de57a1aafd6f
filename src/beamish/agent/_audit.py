"""Spend past a cap, recomputed from the ledger afterwards: the check that every cap held.

The keeper promises that no window ever holds more spend than its cap. This module does not trust
the keeper's own accounting: it reads the journal's spend rows and sums them again per window of
every cap that was set — each run against ``per_run_usd``, each local day and month (in the
budget's time zone) against ``per_day_usd`` and ``per_month_usd``, everything against ``total_usd``
— for each agent's budget and the company's. The demo's summary and the chaos soak report the
result as ``spend_past_cap`` (USD), and its target is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from beamish.agent._budget import COMPANY, Budget, window_bounds
from beamish.agent._pricing import nano_to_usd, usd_to_nano

#: The journal's spend rows, as the audit reads them.
SPEND_ROWS = "SELECT agent, run_id, at, amount_usd FROM ledger WHERE kind = 'spend'"


@dataclass
class CapAudit:
    """``past_cap_usd``: the money spent beyond a cap, summed over every window of every cap;
    ``breaches``: one line per window past its cap; ``windows``: how many windows were checked."""

    past_cap_usd: float = 0.0
    windows: int = 0
    breaches: list[str] = field(default_factory=list)


def _window_key(limit: str, tz: str, row: Mapping[str, Any]) -> Any:
    if limit == "per_run_usd":
        return row["run_id"]
    if limit == "total_usd":
        return "all"
    start, _ = window_bounds(limit, tz, float(row["at"]))
    return start


def _describe(subject: str, limit: str, key: Any, tz: str) -> str:
    who = "the company" if subject == COMPANY else f"agent {subject!r}"
    if limit == "per_run_usd":
        return f"run {key} of {who}"
    if limit == "total_usd":
        return f"{who} in total"
    start = datetime.fromtimestamp(float(key), ZoneInfo(tz))
    when = start.strftime("%Y-%m-%d" if limit == "per_day_usd" else "%Y-%m")
    return f"{who} on {when} ({tz})"


def audit_caps(
    rows: Iterable[Mapping[str, Any]], budgets: Mapping[str, Budget], company: Budget | None = None
) -> CapAudit:
    """Sum ``rows`` (spend rows: ``agent``, ``run_id``, ``at``, ``amount_usd``) per window of every
    cap in ``budgets`` (per agent) and ``company``; see the module docstring."""
    rows = list(rows)
    scopes = [(name, budget) for name, budget in budgets.items() if budget is not None]
    if company is not None:
        scopes.append((COMPANY, company))
    audit = CapAudit()
    past = 0
    for subject, budget in scopes:
        mine = rows if subject == COMPANY else [r for r in rows if r["agent"] == subject]
        for limit, cap in budget.caps().items():
            sums: dict[Any, int] = {}
            for row in mine:
                key = _window_key(limit, budget.tz, row)
                if key is not None:
                    sums[key] = sums.get(key, 0) + usd_to_nano(float(row["amount_usd"]))
            audit.windows += len(sums)
            for key, spent in sorted(sums.items(), key=lambda kv: str(kv[0])):
                if spent > cap:
                    past += spent - cap
                    audit.breaches.append(
                        f"{_describe(subject, limit, key, budget.tz)} spent ${nano_to_usd(spent):.6f}, "
                        f"past its {limit} cap of ${nano_to_usd(cap):.6f}"
                    )
    audit.past_cap_usd = nano_to_usd(past)
    return audit


async def audit_store(store: Any, budgets: Mapping[str, Budget], company: Budget | None = None) -> CapAudit:
    """:func:`audit_caps` over the spend rows of ``store``'s journal."""
    rows = await store.fetchall(SPEND_ROWS)
    return audit_caps([dict(r) for r in rows], budgets, company)
