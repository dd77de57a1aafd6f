"""``beamish reload`` and live upgrades for a company: the part of upgrading that reads a config.

The upgrade engine (:class:`~beamish.upgrade.Upgrader`, versions, probation, ``reconcile``) knows
agents and supervisors, not ``beamish.toml``; a company wires it in here, as it wires its scheduler
and memory server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beamish._exceptions import SpecError
from beamish._redact import redact_text
from beamish.company._config import load_config
from beamish.company._tree import agent_spec, build_tree
from beamish.upgrade._probation import ProbationRules
from beamish.upgrade._reload import reconcile
from beamish.upgrade._upgrader import Upgrader


async def reload_company(
    company: Any, config_path: str | None = None, *, author: str = "person", reason: str = "beamish reload"
) -> dict[str, Any]:
    """Reload ``company`` from ``config_path`` (default: the file it was started from)."""
    upgrader: Upgrader | None = getattr(company, "upgrader", None)
    if upgrader is None or company.root is None:
        raise SpecError("this node has no live upgrades (start it with `beamish run`)")
    if company.cluster is not None:
        raise SpecError("reload applies to a single node; this node is one of a cluster")
    source = Path(config_path) if config_path else Path(company.config.path)
    new_config = load_config(source)
    if new_config.store_url != company.config.store_url:
        raise SpecError(
            f"{source}: the store differs from the running node's ({redact_text(new_config.store_url)!r}); "
            "a reload cannot move a company to another store"
        )
    old_spec = build_tree(company.config, company.parts)
    new_spec = build_tree(new_config, company.parts)
    report = await reconcile(upgrader, company.root, old_spec, new_spec, author=author, reason=reason)
    if _schedule_data(company.config) != _schedule_data(new_config):
        report.not_applied.append("schedules (they change at the next start)")
    company.config = new_config
    return report.to_json()


def _schedule_data(config: Any) -> dict[str, list[dict[str, Any]]]:
    """Each agent's schedules as plain data (the scheduler keeps the ones it started with)."""
    return {name: [s.model_dump() for s in a.section.schedules] for name, a in config.agents.items()}


def attach_upgrades(parts: Any, *, rules: ProbationRules | None = None, clock: Any = None) -> None:
    """Give a company (its ``CompanyParts``) live upgrades: versions recorded at start, proposals
    rolled out, the rollback guard, ``reload``. The upgrader is ``company.upgrader``."""

    async def on_start(company: Any) -> None:
        upgrader = Upgrader(company.node, company.store, clock=clock, rules=rules)
        for agent in company.config.agents.values():
            await upgrader.register(agent_spec(agent, company.config, company.parts))
        await upgrader.start()
        company.upgrader = upgrader

    async def on_stop(company: Any) -> None:
        upgrader = getattr(company, "upgrader", None)
        if upgrader is not None:
            await upgrader.stop()

    parts.on_start.append(on_start)
    parts.on_stop.append(on_stop)
