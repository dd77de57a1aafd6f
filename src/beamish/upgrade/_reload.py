"""Apply a changed supervision tree to a running one, by OTP's rules for changed specs.

The live tree is compared with the one the new config describes, child by child (by id, recursing
into groups): a child only in the new tree is started; a child only in the old one is terminated and
its spec deleted; an agent whose definition changed gets a new version (or the earlier version that
had that definition), which it takes at its next (re)start — a live agent between two runs, never
mid-run. Agent versions record their author. The store notes what the file says of each agent, so a
restart with the same file keeps what runs (see :meth:`~beamish.upgrade.Versions.adopt`).

Reading a company's ``beamish.toml`` is the company's part (``beamish.company._upgrades``); this
module needs only the two trees.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from beamish._exceptions import NotFound
from beamish.agent._spec import AgentSpec
from beamish.runtime import SupervisorSpec
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
