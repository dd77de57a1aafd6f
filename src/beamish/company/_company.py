"""A running company: the node, its supervision tree, events kept, the control channel, the dashboard.

:class:`Company` is what ``beamish run`` and ``beamish demo`` start. It also answers the control
channel and the dashboard (tree, events, pause, resume), so both see the same live company.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import BeamishError
from beamish._exits import ManualPause
from beamish._redact import install_log_redaction
from beamish._tasks import cancel_and_wait
from beamish.agent._budget import set_company_budget
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import PauseRecord
from beamish.agent._ratelimit import set_rate_limits
from beamish.agent._runs import runs_of
from beamish.agent._store_ledger import StoreLedger
from beamish.company._approvals import ApprovalsMixin
from beamish.company._config import CompanyConfig
from beamish.company._control import ControlServer, _answers, control_path
from beamish.company._eventwriter import EventWriter
from beamish.company._operate import restart_agent, start_agent, stop_agent
from beamish.company._status import EventHub, TreeNode, UnknownAgent
from beamish.company._tree import CompanyParts, build_tree, company_budget, rate_limits
from beamish.company._upgrades import reload_company
from beamish.company._view import _day_start, apply_event, fill_queues, next_fire, show_running, skeleton
from beamish.journal import open_store
from beamish.runtime import Node
from beamish.runtime._zygote_client import discard_prestarted
from beamish.telemetry import SentryReporter, Telemetry

logger = logging.getLogger("beamish.company")

#: Event kinds only the node emits (the runtime's, and the memory service's): the company stores them.
_RUNTIME_KINDS = ("child.", "actor.", "supervisor.", "node.", "memory.")


def _published_live(event: Event) -> bool:
    """This process's store outages reach the hub as they happen (the store journals them later)."""
    return event.kind.startswith("store.") and event.data.get("pid") == os.getpid()


class Company(ApprovalsMixin):
    """The company described by ``config``, started by :meth:`start` and stopped by :meth:`stop`."""

    def __init__(
        self,
        config: CompanyConfig,
        *,
        clock: Clock | None = None,
        parts: CompanyParts | None = None,
        sinks: Sequence[Callable[[Event], None]] = (),
        control: bool = True,
        node_name: str = "node",
        cluster: Any = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.parts = parts or CompanyParts()
        self.hub = EventHub(keep=500)
        self.node: Any = None
        self.store: Any = None
        self.root: Any = None
        self._sinks = list(sinks)
        self._control = (
            ControlServer(self, control_path(config.store_url, config.base_dir)) if control else None
        )
        self._node_name = node_name
        #: A ``beamish.cluster.CompanyCluster`` when this node is one of many on a PostgreSQL store.
        self.cluster = cluster
        self._facts = skeleton(config, services=self.parts.service_names())
        self._events = EventWriter()
        self._tail: asyncio.Task[None] | None = None
        self._telemetry: list[Any] = []
        #: Agents stopped by hand (``beamish stop``): shown as stopped, not restarting.
        self._stopped: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, start the node and the tree; nothing is left running if any step fails."""
        install_log_redaction()  # no log line of the node or its libraries carries a secret

        if self._control is not None and await _answers(self._control.path):
            raise RuntimeError(f"a node is already running this company (it answers on {self._control.path})")
        if self.config.store_url.startswith("sqlite:///"):
            Path(self.config.store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.store = await open_store(self.config.store_url)
        self.store.on_outage(self._publish)  # live; the tail skips the journaled copies
        try:
            # the config's company-wide caps, where every agent (any process, any node) reads them
            await set_company_budget(self.store, company_budget(self.config))
            await set_rate_limits(self.store, rate_limits(self.config))
            self._telemetry = _telemetry_sinks(self.config)
            self.node = Node(self.config.store_url, self.clock, name=self._node_name)
            await self.node.__aenter__()
            _preload(self.node, self.config)
            await _warm_process_template(self.node, self.config)
            self.node.add_event_sink(self._on_event)
            self._events.start(self.store)
            last = await self.store.fetchone("SELECT MAX(id) AS m FROM events")
            since = int(last["m"] or 0) if last else 0
            self._tail = asyncio.create_task(self._tail_store(since), name="beamish-company-tail")
            await self.parts.before_start(self)
            spec = build_tree(self.config, self.parts)
            if self.cluster is not None:  # agents and groups are placed by lease, not started here
                spec = self.cluster.split(self, spec)
            self.root = await self.node.start_supervisor(spec, name="root")
            if self.cluster is not None:
                await self.cluster.start(self)
            await self.parts.after_start(self)
            if self._control is not None:
                await self._control.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop in reverse order: control channel, tree (agents stop politely), event writer, store."""
        if self._control is not None:
            await self._control.stop()
        with contextlib.suppress(Exception):
            await self.parts.before_stop(self)
        if self.node is not None:
            if self.cluster is not None:  # hand the agents over before the node goes
                with contextlib.suppress(Exception):
                    await self.cluster.stop()
            await self.node.close()
            self.node = None
        await cancel_and_wait(self._tail)
        self._tail = None
        unstored = await self._events.stop()
        if unstored is not None:  # said on stderr and to every sink (Sentry, the dashboard, status)
            logger.error("%s", unstored.message)
            self._publish(unstored.event(self._node_name))
        for sink in self._telemetry:
            close = getattr(sink, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def __aenter__(self) -> Company:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def clock_note(self) -> str | None:
        """What the dashboard says about a scheduler clock that is not the wall's (the demo's)."""
        label = getattr(self.parts.schedule_clock, "label", None)
        return label if isinstance(label, str) else None

    # -- events -------------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """Node sink. Runtime events are stored here; other layers store their own (their agents may
        live in other processes), so those reach the hub from the store's tail instead: one copy each."""
        if event.kind.startswith(_RUNTIME_KINDS):
            self._events.put(event)
            self._publish(event)

    def _publish(self, event: Event) -> None:
        apply_event(self._facts, event)
        self.hub.publish(event)
        for sink in (*self._sinks, *(getattr(t, "on_event", None) for t in self._telemetry)):
            if sink is None:
                continue
            try:
                sink(event)
            except Exception as exc:
                logger.warning("event sink %r raised %s: %s", sink, type(exc).__name__, exc)

    async def _tail_store(self, since: int) -> None:
        """Publish what other layers and agent processes store, as it is stored."""
        async for _eid, event in self.store.follow(since, poll_s=0.2):
            if event.kind.startswith(_RUNTIME_KINDS) or _published_live(event):
                continue
            self._publish(event)

    # -- the control target / dashboard source ------------------------------------------------------
    async def tree(self) -> TreeNode:
        root = copy.deepcopy(self._facts)
        clock = self.parts.schedule_clock or self.clock
        now = None if clock is None else clock.time()
        for node in root.walk():  # the next fire moves on as ticks pass, by the scheduler's clock
            if node.type == "agent" and node.id in self.config.agents:
                node.next_schedule = next_fire(self.config, node.id, now)
        if self.root is not None and self.root.alive:
            with contextlib.suppress(Exception):
                await _overlay(root, self.root)
        for node in root.walk():
            if node.type == "agent" and node.id in self._stopped:
                node.state = "stopped"
        reachable = self.store is not None and self.store.outage.state == "ok"
        if self.store is not None and not reachable:
            root.state = "store_unavailable"  # every run waits for the database, none crashes
        if self.node is not None:  # the version each agent will run, where no upgrade was seen yet
            upgrades = runs_of(self.node).upgrades
            for node in root.walk():
                spec = upgrades.get(node.id) if node.type == "agent" else None
                if spec is not None and spec.version is not None and node.version is None:
                    node.version = f"v{spec.version}"
        if reachable:  # during an outage a read would wait for the store: status answers without spend
            with contextlib.suppress(Exception):
                await show_running(root, self.store, self.config)
            since = _day_start(self.config)
            with contextlib.suppress(Exception):
                await fill_queues(root, self.store)
            for node in root.walk():
                if node.type == "agent":
                    with contextlib.suppress(Exception):
                        node.spent_usd = await self.store.spend(node.id, since=since)
        return root

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return self.hub.subscribe(replay)

    async def pause(self, agent: str) -> None:
        """Pause ``agent`` by hand: a pause record in the store, which its hooks honour before each
        run (runs in flight finish their current step and park); ``resume`` lifts it."""
        self._known(agent)

        keeper = BudgetKeeper(StoreLedger(self.store), self.node.clock)
        reason = ManualPause().to_json()
        await keeper.pause(PauseRecord(agent, "manual", reason, agent=agent, at=self.node.clock.time()))
        event = Event("agent.paused", agent, {"agent": agent, "cause": "manual"})
        await self.store.append_event(event)

    async def resume(self, agent: str) -> None:
        """Lift ``agent``'s pause and queue its paused runs again; an agent with neither is refused
        (a resume that does nothing would read as if it had)."""
        self._known(agent)
        if not await self._is_paused(agent):
            raise BeamishError(f"agent {agent!r} is not paused: nothing to resume")
        await self.node.resume(agent)

    async def _is_paused(self, agent: str) -> bool:
        keeper = BudgetKeeper(StoreLedger(self.store), self.node.clock)
        if await keeper.paused(agent) is not None:
            return True
        return bool(await self.store.list_runs(agent=agent, status="paused", limit=1))

    async def stop_agent(self, agent: str) -> None:
        """Stop ``agent`` until :meth:`start_agent` (``beamish stop``); its queued runs wait."""
        self._known(agent)

        await stop_agent(self.root, agent)
        self._stopped.add(agent)

    async def start_agent(self, agent: str) -> None:
        """Start an agent stopped by :meth:`stop_agent` (``beamish start``)."""
        self._known(agent)

        await start_agent(self.root, agent)
        self._stopped.discard(agent)

    async def restart_agent(self, agent: str) -> None:
        """Stop ``agent`` politely and start it again (``beamish restart``)."""
        self._known(agent)

        await restart_agent(self.root, agent)
        self._stopped.discard(agent)

    async def submit(
        self, agent: str, task: Any, run_id: str | None = None, *, deadline: float | str | None = None
    ) -> str:
        """Give ``agent`` a task; ``run_id`` is the idempotency key (the same id is the same run);
        ``deadline`` (seconds or ``"5m"`` from now) is when it must be done by."""
        self._known(agent)
        submitted: str = await self.node.submit(agent, task, run_id, deadline=deadline)
        return submitted

    async def reload(
        self, config_path: str | None = None, *, author: str = "person", reason: str = "reload"
    ) -> dict[str, Any]:
        """Apply a changed config to the running tree (``beamish reload``; see beamish.upgrade)."""
        report = await reload_company(self, config_path, author=author, reason=reason)
        fresh = skeleton(self.config, services=self.parts.service_names())
        known = {n.id: n for n in self._facts.walk()}
        for node in fresh.walk():  # keep what was seen of the children that stay
            before = known.get(node.id)
            if before is not None and before.type == node.type:
                node.state, node.restarts, node.last_exit = before.state, before.restarts, before.last_exit
                node.version, node.drift = before.version, before.drift
                node.unprotected = before.unprotected
        self._facts = fresh
        return report

    def _known(self, agent: str) -> None:
        if agent not in self.config.agents:
            raise UnknownAgent(agent)
        if self.node is None:
            raise RuntimeError("the company is not running")


async def _overlay(node: TreeNode, sup: Any) -> None:
    """Mark each child running or restarting from the live supervisor, recursing into groups."""
    by_id = {c.id: c for c in node.children}
    for info in await sup.which_children():
        child = by_id.get(str(info.id))
        if child is None:
            continue
        child.restarts = max(child.restarts, int(getattr(info, "restarts", 0)))
        held = child.state in ("paused", "looping", "over_budget")
        if info.ref is None or getattr(info, "restarting", False):
            child.state = "restarting" if not held else child.state
        elif not held:
            child.state = "running"
        if child.type == "supervisor" and info.ref is not None and hasattr(info.ref, "which_children"):
            await _overlay(child, info.ref)


def _preload(node: Any, config: CompanyConfig) -> None:
    """Import what agents need in the process template once, so every agent process forks warm
    (a cold import of the MCP client alone blocks a new process's loop for seconds)."""
    modules = {"beamish.agent._agent", "beamish.agent._loop", "beamish.agent.models._scripted"}
    for agent in config.agents.values():
        provider = agent.model.partition(":")[0]
        if provider in ("anthropic", "openai"):
            modules.add(f"beamish.agent.models._{provider}")
        for tool in agent.tools:
            module = getattr(getattr(tool, "fn", None), "__module__", None)
            if module:
                modules.add(module)
        if "memory" in agent.tools:
            modules.add("beamish.company._memory_tools")
    node.preload(*sorted(m for m in modules if _importable(m)))


def _importable(module: str) -> bool:
    """Preload only what exists: a missing module would stop the process template from starting."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


async def _warm_process_template(node: Any, config: CompanyConfig) -> None:
    """Start the node's process template (and its imports) before any agent's hang timer runs;
    ``beamish run`` started one already (adopted here), or stop that one if no agent needs it."""
    if not any(a.section.isolation == "process" for a in config.agents.values()):
        discard_prestarted()
        return
    await node.warm_processes()


def _telemetry_sinks(config: CompanyConfig) -> list[Any]:
    section = config.file.telemetry
    sinks: list[Any] = []
    if section.otel:
        sinks.append(Telemetry(capture_content=section.capture_content))
    if section.sentry_dsn:
        sinks.append(
            SentryReporter(
                section.sentry_dsn,
                environment=section.sentry_environment,
                capture_content=section.capture_content,
            )
        )
    return sinks
