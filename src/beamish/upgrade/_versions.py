"""Versioned agent definitions in the store: every change is a new version with its author and reason.

A version's ``definition`` is the agent's :class:`~beamish.AgentSpec` as JSON (without its version
number), so any version can be rebuilt and run again — that is what a rollback does. Exactly one
version per agent is ``active``; a version an agent proposed through its tool waits as ``proposed``
until the node rolls it out (or ``refused`` if it cannot be built). Versions are never deleted, and
no two carry the same definition: going back to an earlier definition makes that version active again.

Beside the versions, the store keeps what each agent is in the config file the company last read
(:meth:`Versions.adopt`): a restart with that same file keeps whatever ran, upgrade or rollback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from beamish._exceptions import SpecError
from beamish.agent._spec import AgentSpec
from beamish.journal._payload import canonical

_VERSION = 1
STATES = ("proposed", "active", "superseded", "rolled_back", "refused")
_COLUMNS = (
    "agent, version, definition, author, reason, state, detail, created_at, changed_at, fallback, trial_since"
)


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
    #: While this version is on probation: the version a rollback returns to.
    fallback: int | None = None
    #: While on probation: the store time from which its runs count for the verdict.
    trial_since: float | None = None

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
            "fallback": self.fallback,
            "trial_since": self.trial_since,
        }


@dataclass(frozen=True)
class Adoption:
    """What a node starting from its config file runs for one agent: ``active``; ``replaced`` when the
    file was edited since the company last read it (``active`` then goes on probation against it)."""

    active: AgentVersion
    replaced: AgentVersion | None = None


def definition_of(spec: Any) -> dict[str, Any]:
    """The stored form of an ``AgentSpec``: its JSON without the version number it carries."""
    data = dict(spec.to_json())
    data.pop("version", None)
    return data


def spec_of(version: AgentVersion) -> Any:
    """The ``AgentSpec`` a stored version describes, carrying its version number."""
    return AgentSpec.from_json({**version.definition, "version": version.version})


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for every top-level key that differs, in key order."""
    keys = sorted((set(old) | set(new)) - {"v", "version"})
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _definition(text: str) -> dict[str, Any]:
    stored = json.loads(text)
    if stored.get("v") != _VERSION:
        raise SpecError(f"agent version JSON has version {stored.get('v')!r}; this beamish reads {_VERSION}")
    return dict(stored["spec"])


def _row(row: Any) -> AgentVersion:
    return AgentVersion(
        agent=str(row["agent"]),
        version=int(row["version"]),
        definition=_definition(row["definition"]),
        author=str(row["author"]),
        reason=str(row["reason"]),
        state=str(row["state"]),
        detail=None if row["detail"] is None else str(row["detail"]),
        created_at=float(row["created_at"]),
        changed_at=float(row["changed_at"]),
        fallback=None if row["fallback"] is None else int(row["fallback"]),
        trial_since=None if row["trial_since"] is None else float(row["trial_since"]),
    )


class Versions:
    """The ``agent_versions`` and ``agent_config`` tables of a store (see the ``upgrade`` migrations)."""

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
        _check(agent, state, author, reason)
        async with self.store.transaction() as tx:
            await self._lock(tx)
            if idem_key is not None:
                found = await tx.fetchone(
                    f"SELECT {_COLUMNS} FROM agent_versions WHERE idem_key = ?", (idem_key,)
                )
                if found is not None:
                    return _row(found)
            return await self._insert(tx, agent, definition, author, reason, state, idem_key)

    async def adopt(self, agent: str, definition: dict[str, Any], *, author: str, reason: str) -> Adoption:
        """The version a node starting from its config file runs, ``definition`` being the file's.

        A file unchanged since the company last read it (at start or reload) keeps the active version,
        whatever made it active: an upgrade, a proposal, a rollback. An edited file wins: the version
        with its definition (an earlier one made active again, or a new one) replaces the active one.
        One locked transaction: nodes starting together adopt once, not once each."""
        _check(agent, "active", author, reason)
        async with self.store.transaction() as tx:
            await self._lock(tx)
            found = await tx.fetchone(
                f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND state = 'active'", (agent,)
            )
            last_read = await self._config(tx, agent)
            await self._set_config(tx, agent, definition)
            if found is None:
                return Adoption(await self._insert(tx, agent, definition, author, reason, "active", None))
            active = _row(found)
            if not diff(active.definition, definition) or (
                last_read is not None and not diff(last_read, definition)
            ):
                return Adoption(active)
            same = await self._same(tx, agent, definition)
            if same is None:
                new = await self._insert(tx, agent, definition, author, reason, "active", None)
            else:
                await self._activate(tx, agent, same.version, "superseded")
                new = _row(await self._get(tx, agent, same.version))
            return Adoption(new, replaced=active)

    async def _lock(self, tx: Any) -> None:
        if self.store.dialect == "postgresql":  # number versions one node at a time
            await tx.execute("SELECT pg_advisory_xact_lock(7491338062)")

    async def _insert(
        self,
        tx: Any,
        agent: str,
        definition: dict[str, Any],
        author: str,
        reason: str,
        state: str,
        idem_key: str | None,
    ) -> AgentVersion:
        now = self.store.clock.time()
        top = await tx.fetchone("SELECT MAX(version) AS m FROM agent_versions WHERE agent = ?", (agent,))
        number = int(top["m"] or 0) + 1 if top else 1
        if state == "active":
            await tx.execute(
                "UPDATE agent_versions SET state = 'superseded', changed_at = ?, fallback = NULL, "
                "trial_since = NULL WHERE agent = ? AND state = 'active'",
                (now, agent),
            )
        await tx.execute(
            "INSERT INTO agent_versions (agent, version, definition, author, reason, state, detail, "
            "idem_key, created_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (agent, number, _body(definition), author, reason, state, idem_key, now, now),
        )
        return _row(await self._get(tx, agent, number))

    async def _get(self, tx: Any, agent: str, version: int) -> Any:
        row = await tx.fetchone(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND version = ?", (agent, version)
        )
        assert row is not None
        return row

    async def _same(self, tx: Any, agent: str, definition: dict[str, Any]) -> AgentVersion | None:
        """The newest version with exactly ``definition`` (proposals waiting or refused aside)."""
        rows = await tx.fetchall(
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? "
            "AND state IN ('active', 'superseded', 'rolled_back') ORDER BY version DESC",
            (agent,),
        )
        return next((v for v in map(_row, rows) if not diff(v.definition, definition)), None)

    async def _config(self, tx: Any, agent: str) -> dict[str, Any] | None:
        row = await tx.fetchone("SELECT definition FROM agent_config WHERE agent = ?", (agent,))
        if row is not None:
            return _definition(row["definition"])
        last = await tx.fetchone(  # a store from before agent_config: the config's last version
            f"SELECT {_COLUMNS} FROM agent_versions WHERE agent = ? AND author = 'config' "
            "ORDER BY version DESC LIMIT 1",
            (agent,),
        )
        return None if last is None else _row(last).definition

    async def _set_config(self, tx: Any, agent: str, definition: dict[str, Any]) -> None:
        await tx.execute(
            "INSERT INTO agent_config (agent, definition, recorded_at) VALUES (?, ?, ?) "
            "ON CONFLICT (agent) DO UPDATE SET definition = excluded.definition, "
            "recorded_at = excluded.recorded_at",
            (agent, _body(definition), self.store.clock.time()),
        )

    async def config(self, agent: str) -> dict[str, Any] | None:
        """The agent's definition in the config file the company last read (None: never read)."""
        async with self.store.transaction() as tx:
            return await self._config(tx, agent)

    async def set_config(self, agent: str, definition: dict[str, Any]) -> None:
        """Note ``definition`` as the agent's in the config file the company reads now (a reload)."""
        async with self.store.transaction() as tx:
            await self._set_config(tx, agent, definition)

    async def same(self, agent: str, definition: dict[str, Any]) -> AgentVersion | None:
        """The newest version whose definition is exactly ``definition``, if any."""
        async with self.store.transaction() as tx:
            return await self._same(tx, agent, definition)

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
        async with self.store.transaction() as tx:
            await self._activate(tx, agent, version, previous_state)

    async def _activate(self, tx: Any, agent: str, version: int, previous_state: str) -> None:
        now = self.store.clock.time()
        await tx.execute(
            "UPDATE agent_versions SET state = ?, changed_at = ?, fallback = NULL, trial_since = NULL "
            "WHERE agent = ? AND state = 'active' AND version <> ?",
            (previous_state, now, agent, version),
        )
        await tx.execute(
            "UPDATE agent_versions SET state = 'active', changed_at = ?, fallback = NULL, trial_since = NULL "
            "WHERE agent = ? AND version = ?",
            (now, agent, version),
        )

    async def set_state(self, agent: str, version: int, state: str, detail: str | None = None) -> None:
        """A new state for ``version``; whatever probation it was on is over."""
        if state not in STATES:
            raise SpecError(f"agent version state={state!r} is invalid: expected one of {list(STATES)}")
        await self.store.execute(
            "UPDATE agent_versions SET state = ?, detail = ?, changed_at = ?, fallback = NULL, "
            "trial_since = NULL WHERE agent = ? AND version = ?",
            (state, detail, self.store.clock.time(), agent, version),
        )

    async def note(self, agent: str, version: int, detail: str) -> None:
        """Set ``version``'s detail and nothing else (its state and probation stay as they are)."""
        await self.store.execute(
            "UPDATE agent_versions SET detail = ?, changed_at = ? WHERE agent = ? AND version = ?",
            (detail, self.store.clock.time(), agent, version),
        )

    async def put_on_probation(self, agent: str, version: int, fallback: int, since: float) -> None:
        """Note that ``version`` is on probation against ``fallback`` (so a restart keeps it there)."""
        await self.store.execute(
            "UPDATE agent_versions SET fallback = ?, trial_since = ? WHERE agent = ? AND version = ?",
            (fallback, since, agent, version),
        )


def _check(agent: str, state: str, author: str, reason: str) -> None:
    if state not in STATES:
        raise SpecError(f"agent version state={state!r} is invalid: expected one of {list(STATES)}")
    if not author or not reason:
        raise SpecError(f"a new version of {agent!r} needs an author and a reason")


def _body(definition: dict[str, Any]) -> str:
    return canonical({"v": _VERSION, "spec": definition}, "agent definition")
