"""Commands about a company: init, run, status, events, runs, pause, resume, budget, dashboard.

Commands that need a running node reach it over the control socket beside the store; when no node
answers, the read-only ones read the store instead (and say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beamish._exceptions import BeamishError
from beamish._net import check_bind
from beamish.agent._breaker import BreakerState, breaker_states
from beamish.cli._cluster import placement_table
from beamish.cli._common import ConfigOption, JsonOption, _open_store, fail, load, run_async
from beamish.cli._output import console, emit_json, err
from beamish.cli._render import running_text, tree_view
from beamish.cli._run import run_company
from beamish.cli._setup import preflight
from beamish.company._config import CompanyConfig
from beamish.company._control import ControlUnavailable, control_path, control_request
from beamish.company._remote import NodeOrStore
from beamish.company._running import RunningBudget, running_budgets
from beamish.company._status import TreeNode
from beamish.company._view import StoreView, _day_start


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (run, status, budget, dashboard):
        app.command()(command)


def run(
    config_arg: Annotated[
        Path | None, typer.Argument(metavar="[CONFIG]", help="The company's beamish.toml (or -c).")
    ] = None,
    config: ConfigOption = Path("beamish.toml"),
    dashboard_port: Annotated[
        int | None,
        typer.Option(
            "--dashboard", help="Also serve the dashboard on this port (loopback).", min=0, max=65535
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Join a cluster on this store (postgresql://…).")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option("--node-id", help="This node's name in the cluster (default host-pid).")
    ] = None,
    lease: Annotated[
        float | None, typer.Option("--lease", help="Cluster lease period, seconds (default 10).")
    ] = None,
    health: Annotated[
        int | None,
        typer.Option(
            "--health", help="Serve /healthz and /readyz on this port (loopback).", min=0, max=65535
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option("--health-host", help="Bind address of the probes (0.0.0.0 in a pod).")
    ] = "127.0.0.1",
) -> None:
    """Run the company until interrupted (Ctrl-C or SIGTERM stops it in order; SIGHUP reloads).

    Under systemd, use Type=notify (READY/STOPPING, WatchdogSec= fed by the node's loop watchdog).

    With --store/--node-id, as one node of many sharing the agents (see `beamish node`).
    """
    cfg = preflight(config_arg or config)  # refused now, not as a crash loop at the first model call
    try:
        run_async(
            lambda: run_company(
                cfg,
                dashboard_port=dashboard_port,
                store_url=store,
                node_id=node_id,
                lease_s=lease,
                health_port=health,
                health_host=health_host,
            )
        )
    except typer.Exit:  # a RuntimeError too (click's): run_async has already said why
        raise
    except RuntimeError as exc:  # e.g. the company is already running
        raise fail(str(exc)) from None


#: ``status`` exit code when no node runs the company (systemctl's "not running").
EXIT_NOT_RUNNING = 3


def status(config: ConfigOption = Path("beamish.toml"), as_json: JsonOption = False) -> None:
    """The live tree: state, restarts, last exit reason, spend vs cap, next schedule (exit 3: not running)."""
    cfg = load(config)

    async def go() -> tuple[TreeNode, bool]:
        try:
            data = await control_request(control_path(cfg.store_url, cfg.base_dir), {"op": "tree"})
            return TreeNode.from_json(data), True
        except ControlUnavailable:
            store = await _open_store(cfg)
            try:
                return await StoreView(cfg, store).tree(), False
            finally:
                await store.close()

    root, live = run_async(go)
    breakers = _breakers(cfg)

    if as_json:
        data = {"running": live, "config": str(cfg.path), "tree": root.to_json()}
        emit_json({**data, "breakers": [b.to_json() for b in breakers]})
    else:
        console.print(tree_view(root))
        placed = placement_table(cfg.store_url)
        if placed is not None:  # a cluster: which node holds which agent
            console.print(placed)
        if breakers:  # a provider that is failing: its agents go to their fallbacks
            console.print(_breaker_table(breakers))
        if not live:
            console.print("(no node is running: facts read from the store)", style="dim")
    if not live:
        raise typer.Exit(EXIT_NOT_RUNNING)


def _breakers(cfg: CompanyConfig) -> list[BreakerState]:
    """The models whose circuit breaker is open, probing, or counting failures (read from the store)."""

    async def go() -> list[BreakerState]:
        store = await _open_store(cfg)
        try:
            return await breaker_states(store)
        finally:
            await store.close()

    found: list[BreakerState] = run_async(go)
    return found


def _breaker_table(breakers: list[BreakerState]) -> Table:
    table = Table(title="circuit breakers", title_justify="left")
    for column in ("model", "state", "failures in a row", "opened"):
        table.add_column(column)
    for b in breakers:
        opened = datetime.fromtimestamp(b.opened_at, UTC).strftime("%H:%M:%S UTC") if b.opened_at else ""
        style = "red" if b.state == "open" else "yellow"
        table.add_row(b.key, f"[{style}]{b.state}[/]", str(b.failures), opened)
    return table


def ask_node(cfg: CompanyConfig, request: dict[str, Any], *, what: str, timeout: float = 5.0) -> Any:
    """The running node's answer to ``request``, or exit 1 saying that no node runs or why the node
    refused (prefixed with ``what``)."""
    path = control_path(cfg.store_url, cfg.base_dir)
    try:
        return asyncio.run(control_request(path, request, timeout=timeout))
    except ControlUnavailable:
        raise fail(
            f"no node is running this company (nothing answers on {path}); start it with `beamish run`"
        ) from None
    except RuntimeError as exc:
        raise fail(f"{what}: {exc}") from None


def _known_agent(cfg: CompanyConfig, agent: str) -> None:
    if agent not in cfg.agents:
        raise fail(f"no agent named {agent!r} (agents: {', '.join(cfg.agents)})")


def budget(config: ConfigOption = Path("beamish.toml"), as_json: JsonOption = False) -> None:
    """Spend today per agent and for the company, against the caps of the version that runs."""
    cfg = load(config)

    async def go() -> tuple[dict[str, tuple[float, float]], dict[str, RunningBudget]]:
        store = await _open_store(cfg)
        try:
            since = _day_start(cfg)
            out = {
                name: (await store.spend(name, since=since), await store.spend(name)) for name in cfg.agents
            }
            out["(company)"] = (await store.spend(since=since), await store.spend())
            return out, await running_budgets(store, cfg.agents)
        finally:
            await store.close()

    spend, running = run_async(go)
    rows = []
    for name, (today, total) in spend.items():
        section = cfg.agents[name].section.budget if name in cfg.agents else cfg.file.budget
        found = running.get(name)
        cap = found.caps.get("per_day_usd") if found is not None else section.per_day_usd
        rows.append((name, today, cap, total, found))
    if as_json:
        emit_json(
            [
                {
                    "agent": n,
                    "today_usd": t,
                    "cap_per_day_usd": c,
                    "total_usd": tot,
                    "running": found.to_json() if found is not None else None,
                }
                for n, t, c, tot, found in rows
            ]
        )
        return
    table = Table("agent", "today", "cap/day", "total", "running version: caps, prices", box=None)
    for name, today, cap, total, found in rows:
        shown_cap = f"${cap:.2f}" if cap is not None else "none"
        style = "bold magenta" if cap is not None and today >= cap else ""
        runs = "" if found is None else f"v{found.version}: " + running_text(found.to_json())
        table.add_row(name, f"${today:.4f}", shown_cap, f"${total:.4f}", runs, style=style)
    console.print(table)


def dashboard(
    config: ConfigOption = Path("beamish.toml"),
    host: Annotated[str | None, typer.Option(help="Bind address (loopback unless told otherwise).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default from the config, 8765).", min=0, max=65535)
    ] = None,
    token: Annotated[str | None, typer.Option(help="Required for a non-loopback bind.")] = None,
) -> None:
    """Serve the web dashboard (live from the running node, or read-only from the store)."""
    from beamish.dashboard import DashboardServer  # lazy: starlette + uvicorn, only for `beamish dashboard`

    cfg = load(config)
    section = cfg.file.dashboard
    host = host or section.host
    token = token or os.environ.get(section.token_env) or None
    try:
        check_bind(host, token)
    except BeamishError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None

    async def go() -> None:
        path = control_path(cfg.store_url, cfg.base_dir)
        store = await _open_store(cfg)
        source = NodeOrStore(path, cfg, store)
        live, _ = await source.node_status()
        where = "live from the running node" if live else "read-only from the store until a node runs"
        server = DashboardServer(
            source, host=host, port=port if port is not None else section.port, token=token
        )
        url = await server.start()
        console.print(f"dashboard at {url}{'/?token=…' if token else ''}  ({where}); Ctrl-C stops it")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        run_async(go)
