"""Commands about a company: init, run, status, events, runs, pause, resume, budget, dashboard.

Commands that need a running node reach it over the control socket beside the store; when no node
answers, the read-only ones read the store instead (and say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from beamish._exceptions import BeamishError, ConfigError
from beamish.company._config import CompanyConfig, load_config
from beamish.company._control import ControlUnavailable, control_events, control_path, control_request
from beamish.company._examples import solo_company_dir
from beamish.company._view import StoreView, _day_start
from beamish.dashboard._source import TreeNode

T = TypeVar("T")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="BEAMISH_CONFIG", help="The company's beamish.toml."),
]


def load(path: Path) -> CompanyConfig:
    """The config, or exit 2 with every problem listed."""
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print("[bold red]invalid config[/]", markup=True)
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)  # one line per problem
        if not path.expanduser().exists():
            err.print(
                f"(looked in {Path.cwd()}: name the company's beamish.toml, as an argument, with -c or "
                "BEAMISH_CONFIG, or create one with `beamish init`)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(2) from None


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except BeamishError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


async def _open_store(config: CompanyConfig) -> Any:
    from beamish.journal import open_store

    if config.store_url.startswith("sqlite:///"):
        Path(config.store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return await open_store(config.store_url)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (init, run, status, events, runs, submit, pause, resume, budget, dashboard):
        app.command()(command)


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the company.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing beamish.toml.")] = False,
) -> None:
    """Scaffold the 8-agent solo company (CEO, CFO, COO, Marketing, Accountant, Lawyer, CTO, Improver)."""
    source = solo_company_dir()
    target = directory.resolve()
    if (target / "beamish.toml").exists() and not force:
        err.print(f"{target / 'beamish.toml'} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if item.name.startswith((".", "__pycache__")):
            continue
        dest = target / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, dest)
    load(target / "beamish.toml")  # what we wrote must load
    here = target == Path.cwd().resolve()
    config_arg = "" if here else f" {target / 'beamish.toml'}"
    console.print(f"Created the solo company in {target}", soft_wrap=True)
    console.print(f"  beamish run{config_arg}    # on Claude: needs ANTHROPIC_API_KEY", soft_wrap=True)
    console.print(
        "  beamish demo    # the same company offline, on the scripted model, with a fault plan",
        soft_wrap=True,
    )
    console.print(
        "  (OpenAI or a compatible local server: README, 'Configuration', 'Real models')", soft_wrap=True
    )


def run(
    config: Annotated[Path, typer.Argument(help="The company's beamish.toml.")] = Path("beamish.toml"),
    dashboard_port: Annotated[
        int | None, typer.Option("--dashboard", help="Also serve the dashboard on this port (loopback).")
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
) -> None:
    """Run the company until interrupted (Ctrl-C or SIGTERM stops it in order).

    With --store/--node-id, as one node of many sharing the agents (see `beamish node`).
    """
    from beamish.company._company import run_company
    from beamish.company._credentials import describe_missing, missing_credentials

    cfg = load(config)
    missing = missing_credentials(cfg, os.environ)
    if missing:  # refused now, not as a crash loop at the first model call
        err.print(describe_missing(cfg, missing), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        run_async(
            lambda: run_company(
                cfg, dashboard_port=dashboard_port, store_url=store, node_id=node_id, lease_s=lease
            )
        )
    except typer.Exit:  # a RuntimeError too (click's): run_async has already said why
        raise
    except RuntimeError as exc:  # e.g. the company is already running
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def status(config: ConfigOption = Path("beamish.toml")) -> None:
    """The live tree: state, restarts, last exit reason, spend vs cap, next schedule."""
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
    from beamish.cli._render import tree_view

    console.print(tree_view(root))
    placed = __import__("beamish.cli._cluster", fromlist=["x"]).placement_table(cfg.store_url)
    if placed is not None:  # a cluster: which node holds which agent
        console.print(placed)
    if not live:
        console.print("[dim](no node is running: facts read from the store)[/]")


def events(
    config: ConfigOption = Path("beamish.toml"),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    last: Annotated[int, typer.Option("--last", "-n", help="How many recent events to show.")] = 50,
) -> None:
    """Lifecycle events (started, exited with reason, restarted, paused, budget, loops, schedules)."""
    from beamish.cli._render import event_line

    cfg = load(config)

    async def go() -> None:
        path = control_path(cfg.store_url, cfg.base_dir)
        if follow:
            try:
                async for event in control_events(path, replay=last):
                    console.print(event_line(event), soft_wrap=True)
                return
            except ControlUnavailable:
                pass
        store = await _open_store(cfg)
        try:
            view = StoreView(cfg, store)
            if not follow:
                for _eid, event in await view._recent(last):
                    console.print(event_line(event), soft_wrap=True)
                return
            async for event in view.events(replay=last):
                console.print(event_line(event), soft_wrap=True)
        finally:
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        run_async(go)


def runs(
    agent: Annotated[str | None, typer.Argument(help="Only this agent's runs.")] = None,
    config: ConfigOption = Path("beamish.toml"),
    status_: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs to show.")] = 30,
) -> None:
    """Recent runs, newest first."""
    from beamish.cli._render import runs_table

    cfg = load(config)
    if agent is not None and agent not in cfg.agents:
        err.print(f"no agent named {agent!r} (agents: {', '.join(cfg.agents)})")
        raise typer.Exit(1)

    async def go() -> list[Any]:
        store = await _open_store(cfg)
        try:
            found: list[Any] = await store.list_runs(agent=agent, status=status_, limit=limit)
            return found
        finally:
            await store.close()

    console.print(runs_table(run_async(go)))


def ask_node(cfg: CompanyConfig, request: dict[str, Any], *, what: str, timeout: float = 5.0) -> Any:
    """The running node's answer to ``request``, or exit 1 saying that no node runs or why the node
    refused (prefixed with ``what``)."""
    path = control_path(cfg.store_url, cfg.base_dir)
    try:
        return asyncio.run(control_request(path, request, timeout=timeout))
    except ControlUnavailable:
        err.print(f"no node is running this company (nothing answers on {path}); start it with `beamish run`")
        raise typer.Exit(1) from None
    except RuntimeError as exc:
        err.print(f"{what}: {exc}")
        raise typer.Exit(1) from None


def _known_agent(cfg: CompanyConfig, agent: str) -> None:
    if agent not in cfg.agents:
        err.print(f"no agent named {agent!r} (agents: {', '.join(cfg.agents)})")
        raise typer.Exit(1)


def _control(config: Path, op: str, agent: str) -> None:
    cfg = load(config)
    _known_agent(cfg, agent)
    ask_node(cfg, {"op": op, "agent": agent}, what=f"{op} {agent}")
    console.print(f"{op}d {agent}")


def submit(
    agent: str,
    task: str,
    config: ConfigOption = Path("beamish.toml"),
    run_id: Annotated[str | None, typer.Option(help="Idempotency key: the same id is the same run.")] = None,
) -> None:
    """Give an agent a task on the running node; prints the run id (`beamish runs` shows it)."""
    cfg = load(config)
    _known_agent(cfg, agent)
    request = {"op": "submit", "agent": agent, "task": task, "run_id": run_id}
    reply = ask_node(cfg, request, what=f"submit {agent}")
    console.print(reply["run_id"])


def pause(agent: str, config: ConfigOption = Path("beamish.toml")) -> None:
    """Pause an agent (its state kept; `beamish resume` continues it)."""
    _control(config, "pause", agent)


def resume(agent: str, config: ConfigOption = Path("beamish.toml")) -> None:
    """Resume an agent paused by its budget, a loop, or `beamish pause`."""
    _control(config, "resume", agent)


def budget(config: ConfigOption = Path("beamish.toml")) -> None:
    """Spend today per agent and for the company, against the caps."""
    cfg = load(config)

    async def go() -> dict[str, tuple[float, float]]:
        store = await _open_store(cfg)
        try:
            since = _day_start(cfg)
            out = {
                name: (await store.spend(name, since=since), await store.spend(name)) for name in cfg.agents
            }
            out["(company)"] = (await store.spend(since=since), await store.spend())
            return out
        finally:
            await store.close()

    spend = run_async(go)
    table = Table("agent", "today", "cap/day", "total", box=None)
    for name, (today, total) in spend.items():
        section = cfg.agents[name].section.budget if name in cfg.agents else cfg.file.budget
        cap = section.per_day_usd
        shown_cap = f"${cap:.2f}" if cap is not None else "none"
        style = "bold magenta" if cap is not None and today >= cap else ""
        table.add_row(name, f"${today:.4f}", shown_cap, f"${total:.4f}", style=style)
    console.print(table)


def dashboard(
    config: ConfigOption = Path("beamish.toml"),
    host: Annotated[str | None, typer.Option(help="Bind address (loopback unless told otherwise).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from the config, 8765).")] = None,
    token: Annotated[str | None, typer.Option(help="Required for a non-loopback bind.")] = None,
) -> None:
    """Serve the web dashboard (live from the running node, or read-only from the store)."""
    from beamish.company._remote import RemoteView
    from beamish.dashboard import DashboardServer, check_bind

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
        store = None
        source: Any
        try:
            await control_request(path, {"op": "ping"})
            source = RemoteView(path)
            where = "live from the running node"
        except ControlUnavailable:
            store = await _open_store(cfg)
            source = StoreView(cfg, store)
            where = "read-only from the store (no node is running)"
        server = DashboardServer(
            source, host=host, port=port if port is not None else section.port, token=token
        )
        url = await server.start()
        console.print(f"dashboard at {url}{'/?token=…' if token else ''}  ({where}); Ctrl-C stops it")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            if store is not None:
                await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        run_async(go)
