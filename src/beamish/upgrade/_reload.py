"""``beamish reload``: apply a changed config to a running company, by OTP's rules for changed specs.

The live tree is compared with the one the new config describes, child by child (by id, recursing
into groups): a child only in the new tree is started; a child only in the old one is terminated and
its spec deleted; an agent whose definition changed gets a new version (or the earlier version that
had that definition), which it takes at its next (re)start — a live agent between two runs, never
mid-run. Agent versions record their author. The store notes what the file says of each agent, so a
restart with the same file keeps what runs (see :meth:`~beamish.upgrade.Versions.adopt`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamish._exceptions import NotFound, SpecError
from beamish._redact import redact_text
from beamish.upgrade._probation import ProbationRules
from beamish.upgrade._upgrader import Upgrader
from beamish.upgrade._versions import definition_of, diff


@dataclass
class ReloadReport:
    """What a reload did, by child path."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Changed children that are not agents: their new spec is not applied to the live tree.
    not_applied: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "upgraded": self.upgraded,
            "unchanged": self.unchanged,
            "not_applied": self.not_applied,
        }


def _agent_of(child: Any) -> Any:
    from beamish.agent._spec import AgentSpec

    return child.start if isinstance(child.start, AgentSpec) else None


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


async def reconcile(
    upgrader: Upgrader, sup: Any, old: Any, new: Any, *, author: str, reason: str, path: str = "root"
) -> ReloadReport:
    """Change the running supervisor ``sup`` (started from ``old``) to match ``new``."""
    from beamish.runtime import SupervisorSpec

    report = ReloadReport()
    old_by = {c.id: c for c in old.children}
    new_ids = {c.id for c in new.children}
    registry = upgrader._registry()
    for child in reversed(old.children):
        if child.id in new_ids:
            continue
        with contextlib.suppress(NotFound):
            await sup.terminate_child(child.id)
            await sup.delete_child(child.id)
        agent = _agent_of(child)
        if agent is not None:
            registry.upgrades.pop(agent.name, None)
            registry.refs.pop(agent.name, None)
            registry.specs.pop(agent.name, None)
            upgrader.drift.pop(agent.name, None)
        report.removed.append(f"{path}/{child.id}")
    live = {str(info.id): info for info in await sup.which_children()}
    for child in new.children:
        where = f"{path}/{child.id}"
        before = old_by.get(child.id)
        agent = _agent_of(child)
        if before is None:
            if agent is not None:
                await upgrader.register(agent, author=author, reason=f"added: {reason}")
            elif isinstance(child.start, SupervisorSpec):
                for member in child.start.children:
                    if _agent_of(member) is not None:
                        await upgrader.register(_agent_of(member), author=author, reason=f"added: {reason}")
            await sup.start_child(child)
            report.added.append(where)
        elif agent is not None and _agent_of(before) is not None:
            if diff(definition_of(_agent_of(before)), definition_of(agent)):
                await upgrader.versions.set_config(agent.name, definition_of(agent))
                await upgrader.upgrade(agent.name, author=author, reason=reason, spec=agent)
                await upgrader.report_drift(agent.name)
                report.upgraded.append(where)
            else:
                report.unchanged.append(where)
        elif isinstance(child.start, SupervisorSpec) and isinstance(before.start, SupervisorSpec):
            info = live.get(str(child.id))
            if info is None or info.ref is None:
                report.not_applied.append(where)
                continue
            inner = await reconcile(
                upgrader, info.ref, before.start, child.start, author=author, reason=reason, path=where
            )
            for key in ("added", "removed", "upgraded", "unchanged", "not_applied"):
                getattr(report, key).extend(getattr(inner, key))
        elif _same(before, child):
            report.unchanged.append(where)
        else:
            report.not_applied.append(where)
    return report


async def reload_company(
    company: Any, config_path: str | None = None, *, author: str = "person", reason: str = "beamish reload"
) -> dict[str, Any]:
    """Reload ``company`` from ``config_path`` (default: the file it was started from)."""
    from beamish.company._config import load_config
    from beamish.company._tree import build_tree

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
    if _schedules(company.config) != _schedules(new_config):
        report.not_applied.append("schedules (they change at the next start)")
    company.config = new_config
    return report.to_json()


def _schedules(config: Any) -> dict[str, list[dict[str, Any]]]:
    """Each agent's schedules as plain data (the scheduler keeps the ones it started with)."""
    return {name: [s.model_dump() for s in a.section.schedules] for name, a in config.agents.items()}


def attach_upgrades(parts: Any, *, rules: ProbationRules | None = None, clock: Any = None) -> None:
    """Give a company (its ``CompanyParts``) live upgrades: versions recorded at start, proposals
    rolled out, the rollback guard, ``reload``. The upgrader is ``company.upgrader``."""

    async def on_start(company: Any) -> None:
        from beamish.company._tree import agent_spec

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
