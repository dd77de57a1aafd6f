"""The node registry: every node that joined the cluster has a row it keeps fresh with a heartbeat.

A node is *live* while its last heartbeat is younger than its lease period, both read on the store's
clock (the database's on PostgreSQL: a node's own clock may be minutes off); placement spreads units
over live nodes that are not draining. Rows of dead nodes stay (``beamish node list`` shows them as
dead) until the same id joins again. ``request_drain`` is how another process (``beamish node drain``)
asks a node to hand its agents over: the node reads the flag with its next heartbeat.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from beamish._exceptions import SpecError
from beamish.journal import Store, SyncTx

#: Node states as stored: serving; handing its units over; done handing over (or stopped cleanly).
STATES = ("live", "draining", "drained", "stopped")


def default_node_id() -> str:
    """``<host>-<pid>``: unique per process on a host, readable in ``beamish node list``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def check_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not node_id or len(node_id) > 200 or not node_id.isprintable():
        raise SpecError(f"a node id must be 1 to 200 printable characters, got {node_id!r}")
    return node_id


@dataclass(frozen=True)
class NodeInfo:
    """One node as the store sees it. ``alive``: heartbeat within its lease period (as of reading);
    ``seen_s``: seconds since that heartbeat, on the store's clock."""

    node_id: str
    host: str
    pid: int
    state: str
    drain: bool
    started_at: float
    heartbeat_at: float
    lease_s: float
    alive: bool
    units: tuple[str, ...] = field(default_factory=tuple)
    seen_s: float = 0.0

    @property
    def serving(self) -> bool:
        """Takes units: alive, not draining."""
        return self.alive and self.state == "live" and not self.drain


def register(tx: SyncTx, node_id: str, lease_s: float, now: float) -> None:
    """Join (or re-join) as ``node_id``; refuse an id a live node of another process is using."""
    host, pid = socket.gethostname(), os.getpid()
    row = tx.fetchone(
        "SELECT host, pid, state, heartbeat_at, lease_s FROM cluster_nodes WHERE node_id = ?", (node_id,)
    )
    if row is not None:
        fresh = float(row["heartbeat_at"]) + float(row["lease_s"]) > now
        same = str(row["host"]) == host and int(row["pid"]) == pid
        if fresh and not same and row["state"] in ("live", "draining"):
            raise SpecError(
                f"node id {node_id!r} is in use by a live node (pid {row['pid']} on {row['host']}); "
                "give this node another --node-id"
            )
    tx.execute(
        "INSERT INTO cluster_nodes (node_id, host, pid, state, drain, started_at, heartbeat_at, lease_s) "
        "VALUES (?, ?, ?, 'live', 0, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET host = excluded.host, "
        "pid = excluded.pid, state = 'live', drain = 0, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at, lease_s = excluded.lease_s",
        (node_id, host, pid, now, now, lease_s),
    )


def heartbeat(tx: SyncTx, node_id: str, now: float, state: str | None = None) -> bool:
    """Mark ``node_id`` alive at ``now`` (and set its state); returns whether a drain was requested."""
    if state is not None:
        tx.execute(
            "UPDATE cluster_nodes SET heartbeat_at = ?, state = ? WHERE node_id = ?", (now, state, node_id)
        )
    else:
        tx.execute("UPDATE cluster_nodes SET heartbeat_at = ? WHERE node_id = ?", (now, node_id))
    row = tx.fetchone("SELECT drain FROM cluster_nodes WHERE node_id = ?", (node_id,))
    return row is not None and bool(row["drain"])


def fetch_nodes(tx: SyncTx, now: float, prefix: str) -> list[NodeInfo]:
    """Every registered node with the units it holds (unexpired leases named ``prefix…``)."""
    rows = tx.fetchall(
        "SELECT node_id, host, pid, state, drain, started_at, heartbeat_at, lease_s FROM cluster_nodes "
        "ORDER BY node_id"
    )
    held: dict[str, list[str]] = {}
    for lease in tx.fetchall(
        "SELECT name, owner FROM leases WHERE owner IS NOT NULL AND expires_at > ? ORDER BY name", (now,)
    ):
        name = str(lease["name"])
        if name.startswith(prefix):
            held.setdefault(str(lease["owner"]), []).append(name[len(prefix) :])
    return [
        NodeInfo(
            node_id=str(r["node_id"]),
            host=str(r["host"]),
            pid=int(r["pid"]),
            state=str(r["state"]),
            drain=bool(r["drain"]),
            started_at=float(r["started_at"]),
            heartbeat_at=float(r["heartbeat_at"]),
            lease_s=float(r["lease_s"]),
            alive=float(r["heartbeat_at"]) + float(r["lease_s"]) > now and r["state"] != "stopped",
            units=tuple(held.get(str(r["node_id"]), ())),
            seen_s=max(0.0, now - float(r["heartbeat_at"])),
        )
        for r in rows
    ]


async def list_nodes(store: Store, *, prefix: str = "unit:") -> list[NodeInfo]:
    """The cluster's nodes, as ``beamish node list`` prints them."""
    return await store.read(lambda tx: fetch_nodes(tx, store.tx_now(tx), prefix))


async def request_drain(store: Store, node_id: str) -> NodeInfo:
    """Ask ``node_id`` to hand its units over to the other nodes (it does so on its next heartbeat)."""
    check_node_id(node_id)

    def work(tx: SyncTx) -> None:
        n = tx.execute("UPDATE cluster_nodes SET drain = 1 WHERE node_id = ?", (node_id,))
        if n == 0:
            raise SpecError(f"no node {node_id!r} has joined this cluster")

    await store.run(work)
    found = [n for n in await list_nodes(store) if n.node_id == node_id]
    return found[0]
