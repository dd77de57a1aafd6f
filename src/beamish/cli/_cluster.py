"""``beamish node list|drain``: the cluster's nodes, what each holds, and a clean hand-over.

Both read and write the store directly (the nodes watch it), so they work from any machine that
reaches the PostgreSQL store: ``--store URL``, or the store of ``--config``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beamish.cli._common import load, run_async
from beamish.cli._output import console, err
from beamish.cluster import list_nodes, request_drain
from beamish.journal import open_store

node_app = typer.Typer(
    name="node", help="The nodes of a cluster: list them, drain one.", no_args_is_help=True
)

StoreOption = Annotated[
    str | None,
    typer.Option("--store", envvar="BEAMISH_STORE", help="The cluster's store URL (postgresql://…)."),
]
ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="BEAMISH_CONFIG", help="Read the store URL from this config."),
]


async def _open(store: str | None, config: Path) -> Any:
    return await open_store(store if store else load(config).store_url)


def nodes_table(nodes: list[Any]) -> Table:
    """One row per node: state, liveness, heartbeat age, the units it holds."""
    table = Table(title="nodes")
    for col in ("node", "state", "host", "pid", "heartbeat", "lease", "holds"):
        table.add_column(col)
    for n in nodes:
        state = n.state if n.alive else "dead"
        if n.drain and n.state == "live" and n.alive:
            state = "drain requested"
        table.add_row(
            n.node_id,
            state,
            n.host,
            str(n.pid),
            f"{n.seen_s:.1f}s ago",
            f"{n.lease_s:g}s",
            ", ".join(n.units) or "-",
        )
    return table


@node_app.command("list")
def list_(store: StoreOption = None, config: ConfigOption = Path("beamish.toml")) -> None:
    """Every node that joined, live or dead, and which agents or groups it holds."""

    async def go() -> list[Any]:
        opened = await _open(store, config)
        try:
            return await list_nodes(opened)
        finally:
            await opened.close()

    nodes = run_async(go)
    if not nodes:
        console.print("no node has joined a cluster on this store (start one: beamish run --node-id NAME)")
        return
    console.print(nodes_table(nodes))


@node_app.command()
def drain(
    name: Annotated[str, typer.Argument(help="The node to drain (its --node-id).")],
    store: StoreOption = None,
    config: ConfigOption = Path("beamish.toml"),
    wait: Annotated[float, typer.Option(help="Seconds to wait for the hand-over (0: don't).")] = 60.0,
) -> None:
    """Hand NAME's agents over to the other nodes; NAME then exits (when run by `beamish run`)."""

    async def go() -> Any:
        opened = await _open(store, config)
        try:
            info = await request_drain(opened, name)
            deadline = time.monotonic() + wait
            while wait > 0 and info.units and info.alive and time.monotonic() < deadline:
                await _pause(min(0.2, info.lease_s / 3))
                info = next(n for n in await list_nodes(opened) if n.node_id == name)
            return info
        finally:
            await opened.close()

    info = run_async(go)
    if info.units and info.alive:
        err.print(f"node {name} still holds {', '.join(info.units)} (asked to drain; it will go on)")
        raise typer.Exit(1)
    console.print(f"node {name} drained: it holds nothing; the other nodes serve its agents")


async def _pause(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)  # polling the store between looks at the node's row


def placement_table(store_url: str) -> Table | None:
    """For ``beamish status``: which node holds which agent, when the store is a cluster's."""

    async def go() -> list[Any]:
        opened = await _open(store_url, Path())
        try:
            found = await opened.fetchone("SELECT COUNT(*) AS n FROM cluster_nodes")
            return await list_nodes(opened) if found and int(found["n"]) else []
        finally:
            await opened.close()

    nodes = run_async(go)
    return nodes_table(nodes) if nodes else None


def register(app: typer.Typer) -> None:
    app.add_typer(node_app)
