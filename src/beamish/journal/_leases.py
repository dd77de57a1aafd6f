"""Leases with fencing epochs: who holds an agent (or any named thing) and until when.

A lease's ``epoch`` grows every time a *different* holder takes it (or it is taken after expiring),
so a zombie holder that lost it can be told apart: :meth:`renew_lease` raises Fenced. On PostgreSQL
the rows are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent nodes never wait on
each other; on SQLite ``BEGIN IMMEDIATE`` serialises claimers. Every expiry is decided on the
database's clock on PostgreSQL (:meth:`~beamish.journal.Store.tx_now`), read inside the transaction
that decides, so holders on many machines need not agree on the time.
"""

from __future__ import annotations

from beamish._exceptions import Fenced, SpecError
from beamish.journal._base import StoreBase
from beamish.journal._records import Lease
from beamish.journal._sql import Row, SyncTx, for_update_skip_locked


def _lease(row: Row) -> Lease:
    return Lease(
        name=str(row["name"]),
        owner=str(row["owner"]),
        epoch=int(row["epoch"]),
        expires_at=float(row["expires_at"]),
    )


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise SpecError(f"a lease ttl_s must be > 0, got {ttl_s!r}")


class LeasesMixin(StoreBase):
    """acquire / renew / release / claim expired leases."""

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        """Take ``name`` for ``owner`` if it is free, expired or already ``owner``'s; else None.

        Re-acquiring one's own live lease keeps the epoch (it is a renewal); any other take bumps it.
        """
        _check_ttl(ttl_s)
        if not name or not owner:
            raise SpecError("a lease needs a name and an owner")

        def work(tx: SyncTx) -> Lease | None:
            now = self.tx_now(tx)
            tx.execute(
                "INSERT INTO leases (name, owner, epoch, expires_at) VALUES (?, NULL, 0, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            row = tx.fetchone(
                "SELECT name, owner, epoch, expires_at FROM leases WHERE name = ?"
                + for_update_skip_locked(tx.dialect),
                (name,),
            )
            if row is None:  # another node is claiming it right now
                return None
            held = row["owner"] is not None and float(row["expires_at"]) > now
            if held and row["owner"] != owner:
                return None
            epoch = int(row["epoch"]) if held else int(row["epoch"]) + 1
            tx.execute(
                "UPDATE leases SET owner = ?, epoch = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
                (owner, epoch, now + ttl_s, now, name),
            )
            return Lease(name=name, owner=owner, epoch=epoch, expires_at=now + ttl_s)

        return await self.run(work)

    async def renew_lease(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend a held lease; Fenced if it expired and was taken, or was released."""
        _check_ttl(ttl_s)

        def work(tx: SyncTx) -> Lease:
            now = self.tx_now(tx)
            n = tx.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ?",
                (now + ttl_s, lease.name, lease.owner, lease.epoch),
            )
            if n != 1:
                raise Fenced(
                    f"lease {lease.name!r} (epoch {lease.epoch}) is no longer held by {lease.owner!r}"
                )
            return Lease(lease.name, lease.owner, lease.epoch, now + ttl_s)

        return await self.run(work)

    async def release_lease(self, lease: Lease) -> bool:
        """Give a lease up (the epoch is kept, so the next holder gets a higher one)."""

        def work(tx: SyncTx) -> bool:
            n = tx.execute(
                "UPDATE leases SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ? AND epoch = ?",
                (lease.name, lease.owner, lease.epoch),
            )
            return n == 1

        return await self.run(work)

    async def get_lease(self, name: str) -> Lease | None:
        """The lease's current holder, or None when free or expired."""

        def look(tx: SyncTx) -> Lease | None:
            row = tx.fetchone("SELECT name, owner, epoch, expires_at FROM leases WHERE name = ?", (name,))
            if row is None or row["owner"] is None or float(row["expires_at"]) <= self.tx_now(tx):
                return None
            return _lease(row)

        return await self.read(look)

    async def lease_left(self, lease: Lease) -> float | None:
        """Seconds ``lease`` has left on the store's clock, or None when it is no longer held at its
        epoch by its owner (released, run out, or taken)."""

        def look(tx: SyncTx) -> float | None:
            row = tx.fetchone(
                "SELECT expires_at FROM leases WHERE name = ? AND owner = ? AND epoch = ?",
                (lease.name, lease.owner, lease.epoch),
            )
            left = None if row is None else float(row["expires_at"]) - self.tx_now(tx)
            return left if left is not None and left > 0 else None

        return await self.read(look)

    async def claim_expired_leases(
        self, owner: str, ttl_s: float, *, prefix: str = "", limit: int = 10
    ) -> list[Lease]:
        """Take over up to ``limit`` expired leases whose name starts with ``prefix`` (node failover)."""
        _check_ttl(ttl_s)

        def work(tx: SyncTx) -> list[Lease]:
            now = self.tx_now(tx)
            rows = tx.fetchall(
                "SELECT name, epoch FROM leases WHERE expires_at <= ? AND name LIKE ? ESCAPE '\\' "
                "ORDER BY name LIMIT ?" + for_update_skip_locked(tx.dialect),
                (now, _like_prefix(prefix), limit),
            )
            taken: list[Lease] = []
            for row in rows:
                epoch = int(row["epoch"]) + 1
                tx.execute(
                    "UPDATE leases SET owner = ?, epoch = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
                    (owner, epoch, now + ttl_s, now, row["name"]),
                )
                taken.append(Lease(str(row["name"]), owner, epoch, now + ttl_s))
            return taken

        return await self.run(work)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
