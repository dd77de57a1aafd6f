"""Versioned agent definitions in the store: every change is a new version with its author and reason.

A version's ``definition`` is the agent's :class:`~beamish.AgentSpec` as JSON (without its version
number), so any version can be rebuilt and run again — that is what a rollback does. Exactly one
version per agent is ``active``; a version an agent proposed through its tool waits as ``proposed``
until the node rolls it out (or ``refused`` if it cannot be built). Versions are never deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from beamish._exceptions import SpecError
from beamish.journal._payload import canonical

_VERSION = 1
STATES = ("proposed", "active", "superseded", "rolled_back", "refused")
_COLUMNS = "agent, version, definition, author, reason, state, detail, created_at, changed_at"


@dataclass(frozen=True)
class AgentVersion:
    """One stored version of an agent's definition."""

    agent: str
    version: int
    definition: dict[str, Any]
    author: str
    reason: str
    state: str
    detail: str | None
    created_at: float
    changed_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "definition": self.definition,
            "author": self.author,
            "reason": self.reason,
            "state": self.state,
            "detail": self.detail,
            "created_at": self.created_at,
            "changed_at": self.changed_at,
        }


def definition_of(spec: Any) -> dict[str, Any]:
    """The stored form of an ``AgentSpec``: its JSON without the version number it carries."""
    data = dict(spec.to_json())
    data.pop("version", None)
    return data


def spec_of(version: AgentVersion) -> Any:
    """The ``AgentSpec`` a stored version describes, carrying its version number."""
    from beamish.agent._spec import AgentSpec

    return AgentSpec.from_json({**version.definition, "version": version.version})


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for every top-level key that differs, in key order."""
    keys = sorted((set(old) | set(new)) - {"v", "version"})
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _row(row: Any) -> AgentVersion:
    stored = json.loads(row["definition"])
    if stored.get("v") != _VERSION:
        raise SpecError(f"agent version JSON has version {stored.get('v')!r}; this beamish reads {_VERSION}")
    return AgentVersion(
        agent=str(row["agent"]),
        version=int(row["version"]),
        definition=dict(stored["spec"]),
        author=str(row["author"]),
        reason=str(row["reason"]),
        state=str(row["state"]),
        detail=None if row["detail"] is None else str(row["detail"]),
        created_at=float(row["created_at"]),
        changed_at=float(row["changed_at"]),
    )


class Versions:
    """The ``agent_versions`` table of a store (see the ``upgrade`` migrations)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def record(
        self,
        agent: str,
        definition: dict[str, Any],
        *,
        author: str,
        reason: str,
        state: str = "active",
        idem_key: str | None = None,
    ) -> AgentVersion:
        """Store a new version (the next number). An ``active`` one supersedes the agent's previous
        active version. With ``idem_key``, recording the same key again returns the first version."""
        return await self._record(agent, definition, author, reason, state, idem_key, only_if_changed=False)

    async def ensure(
        self, agent: str, definition: dict[str, Any], *, author: str, reason: str
    ) -> AgentVersion:
        """The active version, unless ``definition`` differs from what ``author`` (the config) last
        recorded: then a new active version. So a restart with an unchanged config keeps an upgrade
        made while it ran, and an edited config wins. One locked transaction: nodes starting together
        record one version, not one each."""
        return await self._record(agent, definition, author, reason, "active", None, only_if_changed=True)

    async def _record(
        self,
        agent: str,
        definition: dict[str, Any],
        author: str,
        reason: str,
        state: str,
        idem_key: str | None,
        *,
        only_if_changed: bool,
    ) -> AgentVersion:
        if state not in STATES:
            raise SpecError(f"agent version state={state!r} is invalid: expected one of {list(STATES)}")
        if not author or not reason:
            raise SpecError(f"a new version of {agent!r} needs an author and a reason")
        body = canonical({"v": _VERSION, "spec": definition}, "agent definition")
        now = self.store.clock.time()
        async with self.store.transaction() as tx:
            if self.store.dialect == "postgresql":  # number versions one node at a time
                await tx.execute("SELECT pg_advisory_xact_lock(7491338062)")
            if idem_key is not None:
                found = await tx.fetchone(
                    f"SELECT {_COLUMNS} FROM agent_versions WHERE idem_key = ?", (idem_key,)
                )
                if found is not None:
                    return _row(found)
            if only_if_changed:
                active = await tx.fetchone(
                    f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND state = 'active'", (agent,)
                )
                last = await tx.fetchone(
                    f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND author = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (agent, author),
                )
                if active is not None and last is not None and not diff(_row(last).definition, definition):
                    return _row(active)  # unchanged since this author last said so: keep what runs now
            top = await tx.fetchone("SELECT MAX(version) AS m FROM agent_versions WHERE agent = ?", (agent,))
            number = int(top["m"] or 0) + 1 if top else 1
            if state == "active":
                await tx.execute(
                    "UPDATE agent_versions SET state = 'superseded', changed_at = ? "
                    "WHERE agent = ? AND state = 'active'",
                    (now, agent),
                )
            await tx.execute(
                "INSERT INTO agent_versions (agent, version, definition, author, reason, state, detail, "
                "idem_key, created_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (agent, number, body, author, reason, state, idem_key, now, now),
            )
            row = await tx.fetchone(
                f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND version = ?", (agent, number)
            )
        assert row is not None
        return _row(row)

    async def history(self, agent: str) -> list[AgentVersion]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? ORDER BY version", (agent,)
        )
        return [_row(r) for r in rows]

    async def get(self, agent: str, version: int) -> AgentVersion:
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND version = ?", (agent, version)
        )
        if row is None:
            known = [v.version for v in await self.history(agent)]
            raise SpecError(f"agent {agent!r} has no version {version} (versions: {known or 'none'})")
        return _row(row)

    async def active(self, agent: str) -> AgentVersion | None:
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND state = 'active'", (agent,)
        )
        return None if row is None else _row(row)

    async def active_numbers(self) -> dict[str, int]:
        """Each agent's active version number (cheap: no definitions parsed)."""
        rows = await self.store.fetchall("SELECT agent, version FROM agent_versions WHERE state = 'active'")
        return {str(r["agent"]): int(r["version"]) for r in rows}

    async def proposed(self) -> list[AgentVersion]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE state = 'proposed' ORDER BY created_at, version"
        )
        return [_row(r) for r in rows]

    async def activate(self, agent: str, version: int, *, previous_state: str = "superseded") -> None:
        """Make ``version`` the active one; the formerly active version takes ``previous_state``."""
        now = self.store.clock.time()
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE agent_versions SET state = ?, changed_at = ? "
                "WHERE agent = ? AND state = 'active' AND version <> ?",
                (previous_state, now, agent, version),
            )
            await tx.execute(
                "UPDATE agent_versions SET state = 'active', changed_at = ? WHERE agent = ? AND version = ?",
                (now, agent, version),
            )

    async def set_state(self, agent: str, version: int, state: str, detail: str | None = None) -> None:
        if state not in STATES:
            raise SpecError(f"agent version state={state!r} is invalid: expected one of {list(STATES)}")
        await self.store.execute(
            "UPDATE agent_versions SET state = ?, detail = ?, changed_at = ? WHERE agent = ? AND version = ?",
            (state, detail, self.store.clock.time(), agent, version),
        )
