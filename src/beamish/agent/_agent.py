"""The agent actor: one per agent, serving its runs one at a time from the journal.

It holds no run state of its own — runs live in the store — so a restart loses nothing: the new
incarnation finds the runs that were queued or running and continues each from its journal. A
``("wake",)`` cast makes it look for work; it looks once when it starts, too (its starter sends the
first wake). It runs as a task in the node or, with ``isolation="process"``, in its own process,
where it rebuilds its spec, model and tools from JSON (so its class is importable by path).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._events import Event
from beamish._exceptions import SpecError
from beamish._exits import ExitReason, Shutdown
from beamish.agent._approval import AskHumanTool
from beamish.agent._consult import Consulter, ConsultTool, Wake
from beamish.agent._hooks import resolve_hooks, unprotected
from beamish.agent._loop import RunLoop
from beamish.agent._spec import AgentSpec
from beamish.agent._tools import Tool, ToolSet
from beamish.agent.models._registry import make_model
from beamish.agent.models._settings import ModelSettings
from beamish.journal import Lease, Run, open_store
from beamish.runtime import Actor
from beamish.telemetry import Telemetry, otel_available

logger = logging.getLogger("beamish.agent")

#: How many pending runs one look at the store fetches.
_BATCH = 20
_PENDING = (
    "SELECT run_id FROM runs WHERE agent = ? AND status IN ('queued', 'running') "
    "ORDER BY created_at, run_id LIMIT ?"
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
        # one run at a time: a small pool keeps eight agents well inside PostgreSQL's connection limit
        self.store = await open_store(store_url, clock=self.clock, pool_size=2)
        self._build_args = (wake, telemetry, lease)
        await self._build(spec)
        self.served = 0

    async def _build(self, spec: AgentSpec | dict[str, Any]) -> None:
        """Model, tools, hooks and loop from ``spec``, over the open store (at start and on upgrade)."""
        wake, telemetry, lease = self._build_args
        self.spec = spec if isinstance(spec, AgentSpec) else AgentSpec.from_json(spec)
        self.owner = f"{self.spec.name}@{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sources: list[Any] = []
        try:
            options = {**ModelSettings.for_watchdog(self.spec.watchdog), **self.spec.model_options}
            self.model = (
                make_model(self.spec.model, **options)
                if isinstance(self.spec.model, str)
                else self.spec.model
            )
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
            )
        except BaseException:
            await self._close()
            raise

    async def handle_cast(self, message: Any) -> None:
        kind = message[0] if isinstance(message, list | tuple) and message else message
        if kind == "wake":
            await self.drain()
        elif kind == "upgrade":
            await self._upgrade(message[1])
        elif kind == "resume":
            resume = getattr(self.hooks, "resume", None)
            if callable(resume):
                await resume(self.spec.name)
            await self.drain()
        else:
            logger.warning("agent %s ignored the cast %r", self.spec.name, message)

    async def handle_call(self, request: Any) -> Any:
        kind = request[0] if isinstance(request, list | tuple) and request else request
        if kind == "status":
            return {
                "agent": self.spec.name,
                "owner": self.owner,
                "served": self.served,
                "model": self.model.name,
                "unprotected": self.unprotected,
                "store": self.store.outage.state,
            }
        if kind == "drain":
            await self.drain()
            return self.served
        raise SpecError(f"agent {self.spec.name!r} does not answer {request!r}")

    async def drain(self) -> None:
        """Serve every run that is queued or was running when the agent last stopped, oldest first.

        A run another owner took over (``fenced``) is skipped for the rest of this drain.
        """
        skipped: set[str] = set()
        while True:
            rows = await self.store.fetchall(_PENDING, (self.spec.name, _BATCH + len(skipped)))
            pending = [str(r["run_id"]) for r in rows if str(r["run_id"]) not in skipped]
            if not pending:
                return
            for run_id in pending:
                run = await self.store.get_run(run_id)
                if run.status not in ("queued", "running") or await self._expired(run):
                    continue
                outcome = await self.loop.execute(run)
                if outcome.status == "fenced":
                    skipped.add(run_id)
                else:
                    self.served += 1

    async def _announce_unprotected(self) -> None:
        """An agent that runs with nothing watching for hangs, stalls or loops says so where its
        operators look (``beamish events``, ``status``) every time it starts."""
        why = self.unprotected
        logger.warning(
            "agent %s runs unprotected (%s): no hang, stall, step or loop detection", self.spec.name, why
        )
        data = {"agent": self.spec.name, "why": why, "budget": self.spec.budget is not None}
        await self.store.append_event(Event("agent.unprotected", self.spec.name, data, at=self.clock.time()))

    async def _upgrade(self, spec: AgentSpec | dict[str, Any]) -> None:
        """Take a new version of this agent's definition between two runs (a mailbox message is never
        handled mid-run): rebuild model, tools and loop from it as a restart would, then serve."""
        await self._close(keep_store=True)
        await self._build(spec)
        await self.drain()

    async def _expired(self, run: Run) -> bool:
        """A consult whose asker's deadline passed before it began is dropped, not paid for."""
        deadline = run.meta.get("deadline_at")
        if run.status != "queued" or not isinstance(deadline, int | float) or self.clock.time() < deadline:
            return False
        reason = Shutdown("the consult deadline passed before the run started")
        await self.store.update_run(run.run_id, status="failed", reason=reason)
        await self.store.append_event(
            Event(
                "run.finished",
                run.run_id,
                {"run_id": run.run_id, "status": "failed", "reason": reason.to_json()},
            )
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
        for source in self.sources:
            try:
                await source.close()
            except Exception as exc:
                logger.warning("agent %s: closing a tool source failed: %s", self.spec.name, exc)
        model = getattr(self, "model", None)
        if model is not None:
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
