"""Versioned schema migrations, applied on open; a store from a newer beamish is refused untouched.

Layout: ``beamish/journal/migrations/<component>/<NNNN>_<what>.<dialect>.sql`` with ``<dialect>``
``sqlite`` and ``postgresql`` (both files for every version). Each *component* has its own version
sequence, recorded in the ``beamish_meta`` table, so a layer that needs tables (the scheduler's
``schedules``, the bus's mailbox, agent state) adds a directory and numbered files and nothing else:

    migrations/schedule/0001_schedules.sqlite.sql
    migrations/schedule/0001_schedules.postgresql.sql

The ``journal`` component is applied first (its tables may be referenced), then the others by name.
Versions must start at 1 and have no gaps. A store whose recorded version of any component is higher
than the highest file this beamish ships, or that records a component this beamish does not know, was
written by a newer beamish: :class:`~beamish.errors.StoreVersionError`, and nothing is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from beamish._exceptions import StoreError, StoreVersionError
from beamish.journal._sql import Dialect, SyncTx

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|postgresql)\.sql$")
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]*$")
FIRST = "journal"

META_SQL = (
    "CREATE TABLE IF NOT EXISTS beamish_meta ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


def available(dialect: Dialect, root: Traversable | None = None) -> dict[str, list[Migration]]:
    """Every migration shipped with this beamish (or under ``root``), per component, in order."""
    if root is None:
        root = resources.files("beamish.journal").joinpath("migrations")
    found: dict[str, list[Migration]] = {}
    for comp_dir in root.iterdir():
        if not comp_dir.is_dir() or not _COMPONENT.match(comp_dir.name):
            continue
        items: list[Migration] = []
        for entry in comp_dir.iterdir():
            m = _FILE.match(entry.name)
            if m and m.group(3) == dialect:
                items.append(Migration(comp_dir.name, int(m.group(1)), m.group(2), entry.read_text("utf-8")))
        items.sort(key=lambda mig: mig.version)
        for expected, mig in enumerate(items, start=1):
            if mig.version != expected:
                raise StoreError(
                    f"migrations/{mig.component}: version {expected:04d} for {dialect} is missing "
                    f"(found {mig.version:04d}_{mig.name})"
                )
        if items:
            found[comp_dir.name] = items
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != FIRST, kv[0])))


def check_versions(where: str, recorded: dict[str, int], shipped: dict[str, list[Migration]]) -> None:
    """Refuse a store written by a newer beamish (a higher or unknown component version)."""
    for component, version in sorted(recorded.items()):
        known = shipped[component][-1].version if component in shipped else 0
        if version > known:
            raise StoreVersionError(
                f"{where}: schema {component!r} is at version {version}, but this beamish knows only "
                f"up to {known}; the store was written by a newer beamish. Upgrade beamish to open it "
                "(the store was left untouched)"
            )


def read_versions(tx: SyncTx) -> dict[str, int]:
    rows = tx.fetchall("SELECT component, version FROM beamish_meta")
    return {str(r["component"]): int(r["version"]) for r in rows}


def apply(tx: SyncTx, where: str, shipped: dict[str, list[Migration]], now: float) -> list[str]:
    """Apply every pending migration in this transaction; returns ``component/NNNN`` applied."""
    tx.execute(META_SQL)
    recorded = read_versions(tx)
    check_versions(where, recorded, shipped)
    done: list[str] = []
    for component, migrations in shipped.items():
        current = recorded.get(component, 0)
        for mig in migrations:
            if mig.version <= current:
                continue
            tx.executescript(mig.sql)
            done.append(f"{component}/{mig.version:04d}_{mig.name}")
            current = mig.version
        if current != recorded.get(component, 0):
            tx.execute(
                "INSERT INTO beamish_meta (component, version, applied_at) VALUES (?, ?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                "applied_at = excluded.applied_at",
                (component, current, now),
            )
    return done
