"""Placement: which node holds which unit (a top-level agent or a group), through lease rows.

Each unit has a row ``unit:<name>`` in the journal's ``leases`` table. A node claims free or expired
rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (so claiming nodes never wait on each other), renews the
ones it holds, and spreads the load by taking no more than its fair share
(``ceil(units / serving nodes)``). A claim bumps the lease's epoch and, in the same transaction, the
fencing epoch of every run its agents left ``running``: from that commit on, the previous holder can
neither write to those runs nor claim new ones (``claim_run`` checks the lease), even if it wakes up
from a pause believing it still holds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from beamish.journal import Lease, SyncTx
from beamish.journal._sql import for_update_skip_locked

PREFIX = "unit:"


def lease_name(unit: str) -> str:
    return PREFIX + unit


def fair_share(units: int, serving_nodes: int) -> int:
    """How many units one serving node should hold: all of them spread as evenly as possible."""
    return math.ceil(units / max(1, serving_nodes))


def ensure_units(tx: SyncTx, units: Sequence[str]) -> None:
    """Create the lease rows of ``units`` (free) where missing; every node does this on joining."""
    for unit in units:
        tx.execute(
            "INSERT INTO leases (name, owner, epoch, expires_at) VALUES (?, NULL, 0, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (lease_name(unit),),
        )


def renew(tx: SyncTx, held: Mapping[str, Lease], expires_at: float) -> tuple[dict[str, Lease], list[str]]:
    """Extend every held lease still ours at its epoch; returns (kept, lost unit names)."""
    kept: dict[str, Lease] = {}
    lost: list[str] = []
    for unit, lease in held.items():
        n = tx.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ?",
            (expires_at, lease.name, lease.owner, lease.epoch),
        )
        if n == 1:
            kept[unit] = Lease(lease.name, lease.owner, lease.epoch, expires_at)
        else:
            lost.append(unit)
    return kept, lost


def claim(
    tx: SyncTx,
    owner: str,
    candidates: Mapping[str, Sequence[str]],
    want: int,
    now: float,
    ttl_s: float,
) -> list[tuple[str, Lease]]:
    """Take up to ``want`` of the ``candidates`` (unit → its agents) whose lease is free or expired.

    Rows another node is claiming at this moment are skipped, not waited for. Taking a unit fences
    its agents' unfinished runs (a new run epoch) in the same transaction.
    """
    if want <= 0 or not candidates:
        return []
    names = [lease_name(u) for u in candidates]
    marks = ",".join("?" * len(names))
    rows = tx.fetchall(
        f"SELECT name, epoch FROM leases WHERE name IN ({marks}) AND (owner IS NULL OR expires_at <= ?) "
        "ORDER BY expires_at, name LIMIT ?" + for_update_skip_locked(tx.dialect),
        (*names, now, want),
    )
    taken: list[tuple[str, Lease]] = []
    for row in rows:
        name = str(row["name"])
        unit = name[len(PREFIX) :]
        epoch = int(row["epoch"]) + 1
        tx.execute(
            "UPDATE leases SET owner = ?, epoch = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
            (owner, epoch, now + ttl_s, now, name),
        )
        agents = list(candidates[unit])
        if agents:
            tx.execute(
                f"UPDATE runs SET epoch = epoch + 1, lease_owner = ?, updated_at = ? "
                f"WHERE status = 'running' AND agent IN ({','.join('?' * len(agents))})",
                (owner, now, *agents),
            )
        taken.append((unit, Lease(name, owner, epoch, now + ttl_s)))
    return taken


def release(tx: SyncTx, lease: Lease) -> bool:
    """Give a unit up at once (the epoch is kept, so the next holder's is higher)."""
    n = tx.execute(
        "UPDATE leases SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ? AND epoch = ?",
        (lease.name, lease.owner, lease.epoch),
    )
    return n == 1


def load(tx: SyncTx, units: Sequence[str], now: float) -> dict[str, int]:
    """Units held (unexpired) per owner, among ``units``: what the spreading decision reads."""
    if not units:
        return {}
    names = [lease_name(u) for u in units]
    rows = tx.fetchall(
        f"SELECT owner, COUNT(*) AS n FROM leases WHERE name IN ({','.join('?' * len(names))}) "
        "AND owner IS NOT NULL AND expires_at > ? GROUP BY owner",
        (*names, now),
    )
    return {str(r["owner"]): int(r["n"]) for r in rows}
