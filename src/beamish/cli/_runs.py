"""Commands about runs: submit (and wait), show a run's timeline, list runs, events, cancel, retry.

They read the store (``show``, ``runs``, ``events``, ``cancel``), so they work whether or not a node
is running; ``submit`` and ``retry`` ask the running node, which wakes the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from beamish._events import Event
from beamish._exceptions import SpecError
from beamish.agent._deadline import parse_deadline
from beamish.cli._common import ConfigOption, JsonOption, _open_store, fail, load, run_async, with_store
from beamish.cli._company import _known_agent, ask_node
from beamish.cli._journal import parse_duration
from beamish.cli._output import console, emit_json, err
from beamish.cli._render import event_line, runs_table
from beamish.cli._timeline import print_timeline
from beamish.company._config import CompanyConfig
from beamish.company._control import ControlUnavailable, control_events, control_path
from beamish.company._operate import cancel_run
from beamish.company._view import StoreView
from beamish.journal._records import RUN_STATUSES
from beamish.journal._timeline import Timeline, run_json, run_timeline

#: Exit code of ``submit --wait`` when the run did not end within ``--timeout`` (as timeout(1)).
EXIT_TIMEOUT = 124
_FINAL = frozenset({"succeeded", "failed", "paused", "needs_attention"})

FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only newer than this: an age (30m, 1h, 2d) or an ISO time.")
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (submit, show, runs, events, cancel, retry):
        app.command()(command)


def parse_since(text: str | None) -> float | None:
    """``1h``/``2d`` (an age) or an ISO date/time → a Unix time; one line and exit 2 when neither."""
    if text is None:
        return None
    with contextlib.suppress(typer.BadParameter):
        return time.time() - parse_duration(text).total_seconds()
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"--since: expected an age (30m, 1h, 2d) or an ISO time (2026-12-01T09:00), got {text!r}", 2
        ) from None
    return moment.timestamp() if moment.tzinfo is not None else moment.astimezone().timestamp()


def _count(value: int, option: str) -> int:
    if value < 0:
        raise fail(f"{option}: expected a count of 0 or more, got {value}", 2)
    return value


def submit(
    agent: str,
    task: str,
    config: ConfigOption = Path("beamish.toml"),
    run_id: Annotated[str | None, typer.Option(help="Idempotency key: the same id is the same run.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end; print its output.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds (exit 124).")
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(help="Must be done within this (5m, 90s): falls back sooner, else needs attention."),
    ] = None,
) -> None:
    """Give an agent a task on the running node; prints the run id (or, with --wait, its output)."""
    if not task.strip():
        raise fail(
            'the task is empty: say what the agent should do, e.g. beamish submit AGENT "Plan the week"', 2
        )
    if timeout is not None and timeout <= 0:
        raise fail(f"--timeout: expected a number of seconds above 0, got {timeout}", 2)
    if deadline is not None:
        try:
            parse_deadline(deadline, "--deadline")
        except SpecError as exc:
            raise fail(str(exc), 2) from None
    cfg = load(config)
    _known_agent(cfg, agent)
    request = {"op": "submit", "agent": agent, "task": task, "run_id": run_id, "deadline": deadline}
    reply = ask_node(cfg, request, what=f"submit {agent}")
    submitted = str(reply["run_id"])
    if not wait:
        console.print(submitted)
        return
    _wait_and_print(cfg, submitted, timeout)


def _wait_and_print(cfg: CompanyConfig, run_id: str, timeout: float | None) -> None:
    async def wait(store: Any) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            run = await store.get_run(run_id)
            if run.status in _FINAL or (deadline is not None and time.monotonic() >= deadline):
                return run
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    run = with_store(cfg, wait)
    if run.status == "succeeded":
        output = run.output
        console.print(output if isinstance(output, str) else json.dumps(output, default=str))
        return
    if run.status not in _FINAL:
        raise fail(
            f"run {run_id} is still {run.status} after {timeout:g} s (beamish show {run_id})", EXIT_TIMEOUT
        )
    why = Timeline(run).error
    raise fail(f"run {run_id} {run.status}" + (f": {why}" if why else "") + f" (beamish show {run_id})")


def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run's id (see `beamish runs`).")],
    config: ConfigOption = Path("beamish.toml"),
    full: Annotated[bool, typer.Option("--full", help="Arguments, results and errors in full.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A run's timeline: each step (model, tokens, cost; or tool, arguments, result), marks, output."""
    cfg = load(config)
    timeline = with_store(cfg, lambda store: run_timeline(store, run_id))
    if as_json:
        emit_json(timeline.to_json(full=full))
        return

    print_timeline(timeline, full=full)


def runs(
    agent_arg: Annotated[
        str | None, typer.Argument(metavar="[AGENT]", help="Only this agent's runs.")
    ] = None,
    config: ConfigOption = Path("beamish.toml"),
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.")] = None,
    status_: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs to show.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first."""
    _count(limit, "-n/--limit")
    who = agent or agent_arg
    if status_ is not None and status_ not in RUN_STATUSES:
        raise fail(f"--status: expected one of {', '.join(sorted(RUN_STATUSES))}, got {status_!r}", 2)
    after = parse_since(since)
    cfg = load(config)
    if who is not None:
        _known_agent(cfg, who)

    found: list[Any] = with_store(
        cfg, lambda store: store.list_runs(agent=who, status=status_, limit=limit, since=after)
    )
    if as_json:
        emit_json([run_json(r) for r in found])
    else:
        console.print(runs_table(found))


class EventFilter:
    """``events`` filters: an agent (subject, path or ``data.agent``), a kind (exact, a prefix such
    as ``run``, or a glob such as ``run.*``), and a time."""

    def __init__(self, agent: str | None, kind: str | None, since: float | None) -> None:
        self.agent, self.kind, self.since = agent, kind, since

    def __call__(self, event: Event) -> bool:
        if self.since is not None and event.at < self.since:
            return False
        if self.kind is not None:
            kind = self.kind
            matched = (
                fnmatch.fnmatchcase(event.kind, kind)
                if any(c in kind for c in "*?[")
                else (event.kind == kind or event.kind.startswith(kind.rstrip(".") + "."))
            )
            if not matched:
                return False
        if self.agent is not None:
            subject = event.subject
            if not (
                subject == self.agent
                or subject.endswith("/" + self.agent)
                or event.data.get("agent") == self.agent
            ):
                return False
        return True

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.agent, self.kind, self.since))


def events(
    config: ConfigOption = Path("beamish.toml"),
    follow: FollowOption = False,
    last: Annotated[int, typer.Option("--last", "-n", help="How many recent events to show.")] = 50,
    agent: Annotated[str | None, typer.Option("--agent", help="Only events about this agent.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only this kind: run.finished, run, 'run.*'.")
    ] = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lifecycle events (started, exited with reason, restarted, paused, budget, loops, schedules)."""
    _count(last, "-n/--last")
    keep = EventFilter(agent, kind, parse_since(since))
    cfg = load(config)
    if agent is not None:
        _known_agent(cfg, agent)
    printer = _EventPrinter(as_json, follow)
    with contextlib.suppress(KeyboardInterrupt):
        run_async(lambda: _events(cfg, follow, last, keep, printer))
    printer.close()


class _EventPrinter:
    """Lines as they come; with --json, one object per line when following, else one JSON list."""

    def __init__(self, as_json: bool, follow: bool) -> None:
        self.as_json, self.follow = as_json, follow
        self.kept: list[dict[str, Any]] = []

    def __call__(self, event: Event) -> None:
        if not self.as_json:
            console.print(event_line(event), soft_wrap=True)
        elif self.follow:
            emit_json(event.to_json())
        else:
            self.kept.append(event.to_json())

    def close(self) -> None:
        if self.as_json and not self.follow:
            emit_json(self.kept)


async def _events(cfg: CompanyConfig, follow: bool, last: int, keep: EventFilter, out: _EventPrinter) -> None:
    """The recent ``last`` events that pass ``keep``, then (``follow``) new ones as they come."""
    window = last if not keep.active else max(last * 20, 1000)
    if follow:
        with contextlib.suppress(ControlUnavailable):
            async for event in control_events(control_path(cfg.store_url, cfg.base_dir), replay=window):
                if keep(event):
                    out(event)
            return
    store = await _open_store(cfg)
    try:
        view = StoreView(cfg, store)
        if not follow:
            recent = [event for _eid, event in await view._recent(window) if keep(event)]
            for event in recent[-last:] if last else []:
                out(event)
            return
        async for event in view.events(replay=window):
            if keep(event):
                out(event)
    finally:
        await store.close()


def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to cancel.")],
    config: ConfigOption = Path("beamish.toml"),
) -> None:
    """Cancel a run: marked failed ("cancelled"); an agent working on it leaves it at its next step."""
    cfg = load(config)
    with_store(cfg, lambda store: cancel_run(store, run_id))
    console.print(f"cancelled {run_id}")


def retry(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run whose task to give again.")],
    config: ConfigOption = Path("beamish.toml"),
) -> None:
    """A new run with the same agent and task as RUN (on the running node); prints the new run id."""
    cfg = load(config)
    old = with_store(cfg, lambda store: store.get_run(run_id))
    _known_agent(cfg, old.agent)
    new_id = f"{run_id}:retry:{uuid.uuid4().hex[:8]}"
    request = {"op": "submit", "agent": old.agent, "task": old.input, "run_id": new_id}
    reply = ask_node(cfg, request, what=f"retry {run_id}")
    err.print(f"retrying {escape(run_id)} as a new run of {escape(old.agent)}:", markup=True)
    console.print(str(reply["run_id"]))
