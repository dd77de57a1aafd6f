"""The caps and prices of the version that runs, and where ``beamish.toml`` on disk says otherwise.

After a reload, a rollback or an agent's proposal, the file is no longer the truth about an agent:
the store's active version is. ``status``, ``budget`` and the dashboard show that version's caps and
prices, and name each one the file on disk would change (a reload not yet made, or undone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from beamish.company._config import AgentConfig
from beamish.upgrade._versions import Versions

#: The caps shown, in the order a person reads them.
LIMITS = ("per_run_usd", "per_day_usd", "per_month_usd", "total_usd")


@dataclass
class RunningBudget:
    """One agent's running version: its number, caps (USD), prices (per model, USD per Mtok) and
    how the file on disk differs (``"per_run_usd $0.05 → $0.10"``, one string per difference)."""

    version: int | None = None
    caps: dict[str, float] = field(default_factory=dict)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    on_disk: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "caps": self.caps, "prices": self.prices, "on_disk": self.on_disk}


def from_budget_json(data: dict[str, Any], version: int | None = None) -> RunningBudget:
    """A :meth:`Budget.to_json` (or a stored definition's ``budget``) as caps and prices."""
    data = data.get("data", data) if isinstance(data, dict) else {}
    caps = {k: float(data[k]) for k in LIMITS if data.get(k) is not None}
    prices = {
        str(model): {k: float(v) for k, v in price.items() if k in ("input_per_mtok", "output_per_mtok")}
        for model, price in (data.get("prices") or {}).items()
        if isinstance(price, dict)
    }
    return RunningBudget(version, caps, prices)


def differences(agent: AgentConfig, running: RunningBudget) -> list[str]:
    """What the agent's section on disk would change in the running caps and price."""
    out = []
    for limit in LIMITS:
        disk = getattr(agent.section.budget, limit)
        now = running.caps.get(limit)
        if disk != now:
            out.append(f"{limit} {_usd(now)} → {_usd(disk)}")
    wanted = {} if agent.section.price is None else {agent.model: agent.section.price}
    wanted.update(agent.prices)
    for model, price in wanted.items():
        now_price = running.prices.get(model, {})
        named = "" if model == agent.model else f"{model} "  # the first model's, as before the table
        for key in ("input_per_mtok", "output_per_mtok"):
            if now_price.get(key) != getattr(price, key):
                out.append(f"{named}{key} {_usd(now_price.get(key))} → {_usd(getattr(price, key))}")
    return out


async def running_budgets(store: Any, agents: dict[str, AgentConfig]) -> dict[str, RunningBudget]:
    """Each agent's running version's budget from the store, compared with the file on disk; an
    agent with no recorded version (never started with upgrades) runs what the file says."""
    versions = Versions(store)
    out = {}
    for name, agent in agents.items():
        try:
            active = await versions.active(name)
        except Exception:  # a store without the versions table: nothing ran with upgrades yet
            active = None
        if active is None:
            continue
        running = from_budget_json(active.definition.get("budget") or {}, active.version)
        running.on_disk = differences(agent, running)
        out[name] = running
    return out


def caps_text(running: RunningBudget) -> str:
    """``per_run $0.05, per_day $1.00; claude-x $3/$15 per Mtok``: one line for status."""
    caps = ", ".join(f"{k.removesuffix('_usd')} {_usd(v)}" for k, v in running.caps.items()) or "no caps"
    prices = "; ".join(
        f"{m} ${p.get('input_per_mtok', 0):g}/${p.get('output_per_mtok', 0):g} per Mtok"
        for m, p in running.prices.items()
    )
    return f"{caps}; {prices}" if prices else caps


def _usd(value: float | None) -> str:
    return "none" if value is None else f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:g}"
