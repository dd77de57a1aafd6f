"""``beamish demo``: the solo company, offline, under a fault plan; a live tree, then a checked summary."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from beamish.cli._output import console, err
from beamish.cli._render import event_line, tree_view
from beamish.cli._setup import preflight_loaded
from beamish.company._demo import DemoSettings, demo_config, run_demo
from beamish.company._services import company_parts


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run before the summary.", min=5)] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault plan's choices.")] = None,
    keep: Annotated[
        bool, typer.Option(help="Keep the temporary folder (store, memory, effect log).")
    ] = False,
    dashboard_port: Annotated[
        int | None, typer.Option("--dashboard", help="Also serve the live dashboard on this port (loopback).")
    ] = None,
) -> None:
    """Run the 8-agent solo company offline on the scripted model, with faults, and check the journal.

    SQLite in a temporary folder, the shared memory server, schedules on an accelerated clock (a
    working day in --duration seconds), and a fault plan: SIGKILL of a random agent process every
    few seconds, a corrupt line in the memory file, a looping agent, an agent over its budget, a hung
    tool, a tool whose bug crashes its agent, 429s and 500s from the model. Exit code 1 if the journal
    and the world's records disagree in any way (a step lost, an effect repeated or misattributed, a
    line that cannot be read).
    """
    screen = _DemoScreen(duration, dashboard_port)
    workdir = Path(__import__("tempfile").mkdtemp(prefix="beamish-demo-"))
    settings = DemoSettings(duration_s=duration, seed=seed, workdir=workdir, log=screen.log)
    _preflight(workdir, settings)

    def parts_factory(config: Any, clock: Any, _workdir: Path) -> Any:
        return company_parts(config, schedule_clock=clock, poll_s=60.0)

    async def go() -> Any:
        try:
            return await run_demo(settings, parts_factory=parts_factory, on_tick=screen.on_tick)
        finally:
            await screen.close()

    started = time.monotonic()
    if not as_json:
        console.print(
            f"[bold]beamish demo[/]: the solo company on the [bold]scripted[/] model for {duration:.0f} s "
            f"(working folder {escape(str(workdir))})",
            markup=True,
        )
        screen.live = Live(console=console, refresh_per_second=4, transient=False)
        screen.live.start()
    try:
        summary = asyncio.run(go())
    finally:
        if screen.live is not None:
            screen.live.stop()
    data = summary.to_json()
    data["wall_s"] = round(time.monotonic() - started, 2)
    data["workdir"] = str(workdir) if keep else None
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    else:
        _print_summary(data)
    if not summary.agrees or summary.spend_past_cap:
        raise typer.Exit(1)


class _DemoScreen:
    """What the demo shows while it runs: the live tree with the last events, and the dashboard when
    asked for; :meth:`close` stops what the first tick started."""

    def __init__(self, duration: float, dashboard_port: int | None) -> None:
        self.duration, self.dashboard_port = duration, dashboard_port
        self.recent: deque[Text] = deque(maxlen=10)
        self.live: Live | None = None
        self.collector: asyncio.Task[Any] | None = None
        self.server: Any = None

    def log(self, line: str) -> None:
        self.recent.append(Text(line, style="bold yellow"))

    async def on_tick(self, company: Any, elapsed: float) -> None:
        if self.collector is None:
            self.collector = asyncio.create_task(_collect(company, self.recent))
            if self.dashboard_port is not None:
                from beamish.dashboard import DashboardServer  # lazy: starlette + uvicorn

                self.server = DashboardServer(company, port=self.dashboard_port)
                self.log(f"dashboard at {await self.server.start()}")
        if self.live is not None:
            self.live.update(_screen(await company.tree(), self.recent, elapsed, self.duration))

    async def close(self) -> None:
        if self.collector is not None:
            self.collector.cancel()
        if self.server is not None:
            await self.server.stop()


def _preflight(workdir: Path, settings: Any) -> None:
    """The same check as ``beamish check``, on the demo's own config (exit 2 before anything starts)."""
    try:
        preflight_loaded(demo_config(workdir, settings))
    except typer.Exit:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


async def _collect(company: Any, recent: deque[Text]) -> None:
    async for event in company.events(replay=0):
        recent.append(event_line(event))


def _screen(tree: Any, recent: deque[Text], elapsed: float, duration: float) -> Group:
    left = max(0.0, duration - elapsed)
    header = Text(
        f"running {elapsed:5.1f} s, {left:4.1f} s left   (scripted model; faults injected)", style="dim"
    )
    return Group(
        header,
        Panel(tree_view(tree), title="supervision tree", expand=False),
        Panel(Group(*recent), title="events", expand=False),
    )


#: How the summary names what it counts: one, and more than one.
_WORDS = {
    "sigkill": ("SIGKILL", "SIGKILLs"),
    "corrupt_memory_line": ("corrupt memory line", "corrupt memory lines"),
    "server_error_500": ("HTTP 500", "HTTP 500s"),
    "rate_limit_429": ("HTTP 429", "HTTP 429s"),
    "tool_crash": ("tool crash", "tool crashes"),
    "hung_tool": ("hung tool", "hung tools"),
    "loop": ("loop", "loops"),
    "effect_log": ("in the effect log", "in the effect log"),
    "memory": ("in the memory file", "in the memory file"),
}


def counted(counts: dict[str, int], *, zeros: bool = False) -> str:
    """``{"succeeded": 33, "paused": 3}`` as ``33 succeeded, 3 paused`` (``none`` when empty)."""
    words = []
    for name, n in counts.items():
        if n or zeros:
            one, more = _WORDS.get(name, (name.replace("_", " "),) * 2)
            words.append(f"{n} {one if n == 1 else more}")
    return ", ".join(words) or "none"


def _exits(reasons: dict[str, int]) -> str:
    processes = {k: v for k, v in reasons.items() if not k.startswith("run:")}
    runs = {k.removeprefix("run:"): v for k, v in reasons.items() if k.startswith("run:")}
    text = f"processes {counted(processes)}"
    return f"{text}; runs {counted(runs)}" if runs else text


def _print_summary(data: dict[str, Any]) -> None:
    console.print()
    table = Table(title="beamish demo: summary", show_header=False, box=None)
    ok = not any(data["mismatches"].values())
    rows = [
        (
            "runs completed",
            f"{data['runs_completed']} of {data['runs_total']} ({counted(data['runs_by_status'])})",
        ),
        ("restarts", str(data["restarts"])),
        ("exit reasons", _exits(data["exit_reasons"])),
        ("lost steps", str(data["lost_steps"])),
        ("duplicate effects", f"{data['duplicate_effects']} (of {data['effects_applied']} effects)"),
        ("mismatches", counted(data["mismatches"])),
        (
            "unreadable lines",
            f"{sum(data['unreadable_lines'].values())} ({counted(data['unreadable_lines'], zeros=True)})",
        ),
        (
            "LLM calls",
            f"{data['llm_calls_made']} made, {data['llm_calls_replayed']} replayed from the journal",
        ),
        ("spend", f"${data['spend_usd']:.4f} (scripted model at a demo price)"),
        ("spend past a cap", f"${data['spend_past_cap']:.4f} (every run, day, month, total and company cap)"),
        ("scheduled fires", f"{data['scheduled_fires']}, success rate {data['scheduled_success_rate']}"),
        (
            "approvals",
            counted(data.get("approvals", {}), zeros=True) + " (marketing's posts, through the API)",
        ),
        ("alerts sent", counted(data.get("alerts_sent", {})) + " (to the local sink, signatures checked)"),
        ("faults injected", counted(data["faults_injected"])),
        ("faults seen", counted(data["faults_seen"], zeros=True)),
        (
            "live upgrades",
            "; ".join(
                f"{u['agent']} v{u['previous']}→v{u['version']} by {u['author']}: {u['reason']}"
                for u in data.get("upgrades", [])
            )
            or "none",
        ),
    ]
    for name, value in rows:
        table.add_row(Text(name, style="bold"), value)
    console.print(table)
    for problem in data["problems"]:
        err.print(f"[red]problem:[/] {escape(problem)}", markup=True)
    console.print(
        "[green]the journal and the world agree[/] (effect log, agent versions, memory file)"
        if ok
        else "[red]the journal and the world disagree[/]",
        markup=True,
    )
