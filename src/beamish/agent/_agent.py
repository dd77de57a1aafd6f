"""The agent actor: one per agent, serving its runs from the journal, up to ``concurrency`` at once.

It holds no run state of its own — runs live in the store — so a restart loses nothing: the new
incarnation finds the runs that were queued or running and continues each from its journal. A
``("wake",)`` cast makes it look for work; it looks once when it starts, too (its starter sends the
first wake). It runs as a task in the node or, with ``isolation="process"``, in its own process,
where it rebuilds its spec, model and tools from JSON (so its class is importable by path).

Runs in flight are asyncio tasks of the actor (in the node for a task agent, in the agent's one
process for a process agent): a run waits on its model or its tools, rarely on the CPU, so tasks
cost a few kilobytes each where a process per run would cost tens of megabytes. Each run has its own
journal, watchdog state, loop detector and budget reservations. A crash that escapes one run ends
the actor (its supervisor restarts it); the other runs in flight are cancelled with it and the new
incarnation resumes every one of them from its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._events import Event
from beamish._exceptions import SpecError, StopActor
from beamish._exits import ExitReason, Killed, Shutdown
from beamish.agent._approval import AskHumanTool
from beamish.agent._breaker import Breaker
from beamish.agent._consult import Consulter, ConsultTool, Wake
from beamish.agent._context import ContextLimit, resolve_window
from beamish.agent._hooks import resolve_hooks, unprotected
from beamish.agent._loop import Outcome, RunLoop
from beamish.agent._ratelimit import RateLimiter
from beamish.agent._spec import AgentSpec
from beamish.agent._tools import Tool, ToolSet
from beamish.agent.models._registry import make_model
from beamish.agent.models._settings import ModelSettings
from beamish.journal import Lease, Run, open_store
from beamish.journal._runs import RUN_COLUMNS, run_from_row
from beamish.runtime import Actor
from beamish.telemetry import Telemetry, otel_available

logger = logging.getLogger("beamish.agent")

#: How long an exiting agent waits for its cancelled runs to unwind.
_UNWIND_S = 1.0
#: The agent's queue, in the order it serves it: runs interrupted mid-flight first (they held a slot),
#: then by priority (higher first), then first in, first out. Runs this incarnation is running (its
#: own in flight) are left out, so a look at the queue costs what is waiting, not what is running.
_PENDING = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE agent = ? AND status IN ('queued', 'running') "
    "AND NOT (status = 'running' AND lease_owner IS NOT NULL AND lease_owner = ?) {keys}"
    "ORDER BY CASE WHEN status = 'running' THEN 0 ELSE 1 END, priority DESC, created_at, run_id LIMIT ?"
)


class AgentActor(Actor):
    """Runs one agent's runs. ``init(spec, store_url)``: ``spec`` an ``AgentSpec`` or its JSON."""

    async def init(
        self,
        spec: AgentSpec | dict[str, Any],
        store_url: str,
        clock: Clock | None = None,
        wake: Wake | None = None,
        telemetry: Any = None,
        lease: list[Any] | None = None,
    ) -> None:
        """``lease``: ``[name, owner, epoch]`` of the cluster lease this agent is held by, if any."""
        self.clock = clock or SYSTEM_CLOCK
        # a small pool keeps eight agents well inside PostgreSQL's connection limit; runs in flight
        # share it (a run spends most of its time waiting on its model, not on the store)
        concurrency = spec.concurrency if isinstance(spec, AgentSpec) else int(spec.get("concurrency", 1))
        # one node waits out an outage at the agent's start; a cluster's agent fails its start at once,
        # so its node's placer is not held up and the unit's lease goes back for whoever can reach it
        self.store = await open_store(
            store_url, clock=self.clock, pool_size=min(2 + concurrency // 8, 8), wait=lease is None
        )
        self._build_args = (wake, telemetry, lease)
        self._init_serving()
        await self._build(spec)
        self.served = 0

    async def _build(self, spec: AgentSpec | dict[str, Any]) -> None:
        """Model, tools, hooks and loop from ``spec``, over the open store (at start and on upgrade)."""
        wake, telemetry, lease = self._build_args
        self.spec = spec if isinstance(spec, AgentSpec) else AgentSpec.from_json(spec)
        self.owner = f"{self.spec.name}@{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sources: list[Any] = []
        try:
            defaults = ModelSettings.for_watchdog(self.spec.watchdog)
            self.models = [
                make_model(m, **{**defaults, **self.spec.options_for(m)}) if isinstance(m, str) else m
                for m in self.spec.models
            ]
            self.model = self.models[0]
            tools = ToolSet(self.spec.name)
            consulter = None
            for entry in self.spec.tools:
                if isinstance(entry, Tool):
                    tools.add(entry)
                elif entry == "consult":
                    tools.add(ConsultTool(self.spec.consult_deadline_s, self.spec.consults))
                    consulter = Consulter(self.store, self.clock, wake=wake)
                elif entry == "ask_human":
                    tools.add(AskHumanTool())
                else:
                    source = await entry.open(self.spec.name)
                    self.sources.append(source)
                    for t in source.tools():
                        tools.add(t)
            self.hooks = resolve_hooks(self.spec, self.store, self.clock)
            hooks: Any = self.hooks  # the watchdog's hooks, perhaps wrapped (telemetry): bind them
            while hooks is not None and not hasattr(hooks, "on_process_failure"):
                hooks = getattr(hooks, "inner", None)
            if hooks is not None:
                hooks.on_process_failure = self._die
            self.unprotected = unprotected(self.spec, self.hooks)
            if self.unprotected is not None:
                await self._announce_unprotected()
            self.loop = _loop_class(self.spec)(
                spec=self.spec,
                model=self.model,
                tools=tools,
                hooks=self.hooks,
                store=self.store,
                clock=self.clock,
                owner=self.owner,
                consulter=consulter,
                retry=self.spec.retry,
                telemetry=telemetry if telemetry is not None else _default_telemetry(self.spec),
                lease=None if lease is None else Lease(str(lease[0]), str(lease[1]), int(lease[2]), 0.0),
                limiter=RateLimiter(self.store, self.clock),
                fallbacks=self.models[1:],
                breaker=Breaker(self.store, self.clock, self.spec.breaker, owner=self.owner),
            )
            self._warm_up()
        except BaseException:
            await self._close()
            raise

    def _warm_up(self) -> None:
        """Start, on threads, what the first run would otherwise do on the node's loop: the model
        SDK's imports and client (its TLS context), the model's context window from genai-prices'
        data. Each is 0.05-0.6 s of CPU that would stall every run and agent on the loop; the
        first runs wait for them (see :meth:`_fill`) rather than block on their import locks."""
        warm = getattr(self.model, "warm", None)
        if callable(warm):
            started = warm()
            if isinstance(started, asyncio.Future):
                self._warming.append(started)
        limit = self.spec.context
        if isinstance(limit, ContextLimit) and limit.window is None:
            window = asyncio.ensure_future(
                asyncio.to_thread(resolve_window, limit, self.model, self.model.name)
            )
            window.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._warming.append(window)  # a failure is the first run's to meet and raise

    async def handle_cast(self, message: Any) -> None:
        kind = message[0] if isinstance(message, list | tuple) and message else message
        if kind == "wake":
            self._skipped.clear()  # a run fenced off earlier may be ours again
            await self._fill()
        elif kind == "crashed" and self._crash is not None:
            raise self._crash  # a run's crash ends the agent: its supervisor decides
        elif kind == "upgrade":
            await self._upgrade(message[1])
        elif kind == "resume":
            resume = getattr(self.hooks, "resume", None)
            if callable(resume):
                await resume(self.spec.name)
            await self._fill()
        else:
            logger.warning("agent %s ignored the cast %r", self.spec.name, message)

    async def handle_call(self, request: Any) -> Any:
        kind = request[0] if isinstance(request, list | tuple) and request else request
        if kind == "status":
            return {
                "agent": self.spec.name,
                "owner": self.owner,
                "served": self.served,
                "running": len(self._running),
                "concurrency": self.spec.concurrency,
                "model": self.model.name,
                "unprotected": self.unprotected,
                "store": self.store.outage.state,
            }
        if kind == "drain":
            await self.drain()
            return self.served
        raise SpecError(f"agent {self.spec.name!r} does not answer {request!r}")

    # -- serving runs -------------------------------------------------------------------------------
    def _init_serving(self) -> None:
        #: The runs in flight (each an asyncio task), by task.
        self._running: dict[asyncio.Task[Outcome], str] = {}
        self._keys: dict[asyncio.Task[Outcome], str | None] = {}  # and the concurrency key of each
        self._skipped: set[str] = set()  # runs another owner took over (fenced), until the next wake
        self._filling = asyncio.Lock()
        self._filler: asyncio.Task[None] | None = None
        self._again = False
        self._hold = False  # set while an upgrade waits for the runs in flight
        self._crash: BaseException | None = None
        self._warming: list[asyncio.Future[Any]] = []  # see _warm_up

    async def drain(self) -> None:
        """Serve until no run is queued or running for this agent and none is in flight."""
        while True:
            await self._fill()
            if self._crash is not None:
                raise self._crash
            if not self._running:
                return
            await asyncio.wait(list(self._running), return_when=asyncio.FIRST_COMPLETED)

    async def _fill(self) -> None:
        """Start pending runs, oldest first, until ``concurrency`` are in flight or none is left.

        Serialised: two fills at once could start the same run twice.
        """
        async with self._filling:
            while self._warming:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._warming[0])
                self._warming.pop(0)
            self._again = False
            free = self.spec.concurrency - len(self._running)
            if free <= 0 or self._hold or self._crash is not None:
                return
            busy = self._skipped | set(self._running.values())
            keys = {key for key in self._keys.values() if key is not None}
            marks = ", ".join("?" * len(keys))
            sql = _PENDING.format(
                keys=f"AND (concurrency_key IS NULL OR concurrency_key NOT IN ({marks})) " if keys else ""
            )
            # runs in flight not yet claimed may still be listed: room for them too
            rows = await self.store.fetchall(
                sql, (self.spec.name, self.owner, *sorted(keys), free + len(busy))
            )
            for row in rows:
                run_id, key = str(row["run_id"]), row["concurrency_key"]
                if run_id in busy or (key is not None and key in keys):
                    continue
                run = run_from_row(row)  # as listed: claiming it is what decides
                if run.status not in ("queued", "running") or await self._expired(run):
                    continue
                task = asyncio.ensure_future(self.loop.execute(run))
                self._running[task] = run_id
                self._keys[task] = key
                if key is not None:
                    keys.add(key)
                task.add_done_callback(self._finished)
                if len(self._running) >= self.spec.concurrency:
                    return

    def _finished(self, task: asyncio.Task[Outcome]) -> None:
        """A run's task ended: count it, or take its crash to the actor; then fill its slot."""
        run_id = self._running.pop(task, None)
        self._keys.pop(task, None)
        if run_id is None:
            return  # cancelled by the agent itself, which is stopping
        if task.cancelled():  # from inside (a watchdog with no process to end): the agent goes too,
            self._crashed(StopActor(Killed()))  # and its restart resumes the run from its journal
            return
        error = task.exception()
        if error is not None:
            self._crashed(error)
            return
        if task.result().status == "fenced":
            self._skipped.add(run_id)
        else:
            self.served += 1
        self._refill()

    def _refill(self) -> None:
        """Fill free slots in the background; many runs ending at once make one more look, not many."""
        if self._hold or self._crash is not None:
            return
        if self._filler is not None and not self._filler.done():
            self._again = True
            return
        self._filler = asyncio.ensure_future(self._fill_again())

    async def _fill_again(self) -> None:
        try:
            await self._fill()
            while self._again:
                await self._fill()
        except Exception as exc:  # the store failed under us: a crash of the agent, as inline it was
            self._crashed(exc)

    def _crashed(self, error: BaseException) -> None:
        """Exit through the mailbox (so ``terminate`` runs and the supervisor sees the error); the
        other runs in flight are cancelled then and resume from their journals after the restart."""
        if self._crash is None:
            self._crash = error
            self.ref.cast(("crashed",))

    async def _stop_runs(self) -> None:
        for task in [*self._running, *([self._filler] if self._filler is not None else [])]:
            task.cancel()
        pending = [*self._running]
        self._running.clear()
        self._keys.clear()
        if pending:  # bounded: a run stuck in a call that ignores cancellation must not hold the exit
            await asyncio.wait(pending, timeout=_UNWIND_S)

    async def _upgrade(self, spec: AgentSpec | dict[str, Any]) -> None:
        """Take a new version of this agent's definition between runs: start no new run, let those
        in flight finish on the version they began with, rebuild model, tools and loop from the new
        one as a restart would, then serve."""
        self._hold = True
        try:
            while self._running:
                await asyncio.wait(list(self._running))
            await self._close(keep_store=True)
            await self._build(spec)
        finally:
            self._hold = False
        await self._fill()

    async def _announce_unprotected(self) -> None:
        """An agent that runs with nothing watching for hangs, stalls or loops says so where its
        operators look (``beamish events``, ``status``) every time it starts."""
        why = self.unprotected
        logger.warning(
            "agent %s runs unprotected (%s): no hang, stall, step or loop detection", self.spec.name, why
        )
        data = {"agent": self.spec.name, "why": why, "budget": self.spec.budget is not None}
        await self.store.append_event(Event("agent.unprotected", self.spec.name, data, at=self.clock.time()))

    async def _expired(self, run: Run) -> bool:
        """A consult whose asker's deadline passed before it began is dropped, not paid for."""
        deadline = run.meta.get("deadline_at")
        if run.status != "queued" or not isinstance(deadline, int | float) or self.clock.time() < deadline:
            return False
        reason = Shutdown("the consult deadline passed before the run started")
        data = {"run_id": run.run_id, "status": "failed", "reason": reason.to_json()}
        await self.store.update_run(
            run.run_id, status="failed", reason=reason, events=[Event("run.finished", run.run_id, data)]
        )
        return True

    def _die(self, reason: ExitReason) -> None:
        """The watchdog saw no progress for too long: a process-level failure. Exit now with
        ``reason`` (``Hung``), without waiting for the stuck run, so the supervisor restarts the
        agent and the run resumes from its journal. Its store and tool sources are released
        afterwards, since ``terminate`` does not run for an actor that dies this way."""
        self.ref.kill(reason)  # at once, without terminate: the stuck run may never return
        self._closing = asyncio.ensure_future(self._close())

    async def terminate(self, reason: ExitReason) -> None:
        await self._close()

    async def _close(self, keep_store: bool = False) -> None:
        if not keep_store:
            await self._stop_runs()
        for source in self.sources:
            try:
                await source.close()
            except Exception as exc:
                logger.warning("agent %s: closing a tool source failed: %s", self.spec.name, exc)
        for model in getattr(self, "models", ()):
            await model.aclose()
        if not keep_store:
            await self.store.close()


#: The run loop for each kind of agent: beamish's own, and ``"entry"`` (an agent written with another
#: framework), which :mod:`beamish.byo` registers when it is imported (the agent layer is below it).
_LOOPS: dict[str, type[RunLoop]] = {"native": RunLoop}


def register_loop(kind: str, loop_class: type[RunLoop]) -> None:
    """Run agents of ``kind`` (``"native"``, ``"entry"``) with ``loop_class``."""
    _LOOPS[kind] = loop_class


def _loop_class(spec: AgentSpec) -> type[RunLoop]:
    kind = "native" if spec.entry is None else "entry"
    loop_class = _LOOPS.get(kind)
    if loop_class is None:
        raise SpecError(
            f"agent {spec.name!r} has entry={spec.entry!r}, but no entry loop is registered: "
            "import beamish.byo"
        )
    return loop_class


def _default_telemetry(spec: AgentSpec) -> Any:
    """OpenTelemetry spans through the global providers when the ``otel`` extra is installed."""
    return Telemetry(capture_content=spec.capture_content) if otel_available() else None
