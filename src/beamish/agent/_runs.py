"""The one path for a run: start agents under supervisors, submit runs, wait for results, resume.

``node.submit/result/resume`` forward here: ``beamish.agent`` registers :class:`Runs` on the node
when it is imported, and the runtime knows nothing of agents. One :class:`Runs` per node keeps the
journal store, the agents started on the node and a poller. ``node.submit`` writes the run to the
store (idempotent on ``run_id``) and wakes the agent; an agent in another process that asks a
consult writes the consulted run to the store, which the poller notices and wakes the agent it is
for. The store and poller live as long as a small keeper actor, a top-level actor of the node, so
``node.close()`` releases them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from beamish._events import Event
from beamish._exceptions import CallTimeout, SpecError
from beamish._exits import ExitReason
from beamish._tasks import cancel_and_wait
from beamish.agent._agent import AgentActor
from beamish.agent._deadline import deadline_meta, parse_deadline, sweep_overdue_in
from beamish.agent._gates import expire_due_in
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._results import FINAL_STATUSES, RunResult
from beamish.agent._store_ledger import StoreLedger
from beamish.journal import Store, open_store
from beamish.journal._runs import run_changed, watch_run
from beamish.journal._sql import Row, SyncTx
from beamish.runtime import Actor, ActorRef, ChildSpec, Node

if TYPE_CHECKING:
    from beamish.agent._spec import AgentSpec

#: How often the poller looks for runs queued for this node's agents by other processes (a process
#: agent's consult, an approval decided elsewhere); a run submitted in this process wakes its agent
#: at once, so this is only the cross-process path's latency (an idle node's cost is this poll).
POLL_S = 0.5
#: How often ``result`` reads a run that a task agent of this node serves: its end wakes the wait
#: in-process, so the read is only the fallback for an end written by another process.
LOCAL_RESULT_POLL_S = 1.0
#: The poller wakes one agent at most this often (a busy agent need not collect a pile of wakes).
WAKE_EVERY_S = 0.5
#: How often the poller applies the expiry policy of gates whose time is up (any node may: the
#: update is conditional, so two nodes never decide one gate twice).
EXPIRE_EVERY_S = 1.0


class _Keeper(Actor):
    """Owns the registry's poller and store for the node's lifetime."""

    internal = True

    async def init(self, registry: Runs) -> None:
        self.registry = registry
        registry._poller = asyncio.ensure_future(registry._poll())

    async def terminate(self, reason: ExitReason) -> None:
        await self.registry.close()


class Runs:
    """Per node: its store, its agents (by name, the live ref of each) and the poller."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.specs: dict[str, AgentSpec] = {}
        self.refs: dict[str, ActorRef] = {}
        self._store: Store | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._poller: asyncio.Future[None] | None = None
        self._keeper: ActorRef | None = None
        self._last_wake: dict[str, float] = {}
        self._preloaded: set[str] = set()
        #: A ``beamish.telemetry.Telemetry`` for task-isolated agents (process ones use the globals).
        self.telemetry: Any = None
        #: On a cluster: agent name → the lease this node holds it by (its runs are claimed under it),
        #: and the agents held by other nodes (runs may be submitted to them from here).
        self.leases: dict[str, Any] = {}
        self.remote: set[str] = set()
        #: Agent name → the spec it takes at its next (re)start in place of its child spec's
        #: (a live upgrade, ``beamish.upgrade``: OTP's changed child spec).
        self.upgrades: dict[str, AgentSpec] = {}
        #: On a cluster: wakes an agent held by another node (the cluster registers it while it runs).
        self.remote_wake: Callable[[str], Awaitable[None]] | None = None

    @property
    def store_url(self) -> str:
        url = self.node.store_url
        if not url:
            raise SpecError(
                "agents need a journal: create the node as Node(store='sqlite:///…' or 'postgresql://…')"
            )
        return url

    async def store(self) -> Store:
        async with self._opening:
            if self._store is None:
                self._store = await open_store(self.store_url, wait=True)
            if self._keeper is None or not self._keeper.alive:
                self._keeper = await self.node.spawn(_Keeper, self)
            return self._store

    async def close(self) -> None:
        await cancel_and_wait(self._poller)
        self._poller = None
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    # -- agents -------------------------------------------------------------------------------------
    def wake(self, agent: str) -> bool:
        """Tell ``agent`` (if it runs on this node) to look for work; whether a live local ref was told."""
        ref = self.refs.get(agent)
        if ref is not None and ref.alive:
            self._last_wake[agent] = asyncio.get_running_loop().time()
            ref.cast(("wake",))
            return True
        return False

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        expired_at = 0.0
        while True:
            await asyncio.sleep(POLL_S)
            store = self._store
            if not self.refs or store is None:
                continue
            sweep = loop.time() - expired_at >= EXPIRE_EVERY_S
            if sweep:
                expired_at = loop.time()
            look = functools.partial(_look, sweep, store.clock.time(), self.node.clock.time())
            try:
                events, rows = await (store.run(look) if sweep else store.read(look))
            except Exception:
                continue  # the store is closing, or briefly unreachable: look again next time
            for event in events:
                if event.kind == "run.needs_attention":
                    run_changed(event.subject)
                self.node.emit(event)
            for row in rows:
                agent = str(row["agent"])
                if agent in self.refs and loop.time() - self._last_wake.get(agent, 0.0) >= WAKE_EVERY_S:
                    self.wake(agent)

    async def start(self, spec: AgentSpec, child: ChildSpec) -> ActorRef:
        spec = self.upgrades.get(spec.name, spec)
        await self.store()
        held = self.leases.get(spec.name)
        fence = None if held is None else [held.name, held.owner, held.epoch]
        if fence is None and spec.name in self.remote:
            # a cluster's agent that this node holds no lease for (its supervisor restarted it while
            # the unit was being stopped): a lease no row matches, so it claims no run and performs
            # no effect until the unit's copy is stopped
            fence = [f"(no lease here for {spec.name})", "", -1]
        if spec.isolation == "task":
            kwargs = {
                "clock": self.node.clock,
                "wake": self.wake,
                "telemetry": self.telemetry,
                "lease": fence,
            }
            target = ChildSpec(
                id=child.id,
                start=AgentActor,
                args=(spec, self.store_url),
                kwargs=kwargs,
                restart=child.restart,
                shutdown=child.shutdown,
            )
        else:
            if self.node.isolation_starter("process") is None:
                raise SpecError(
                    f"agent {spec.name!r} has isolation='process' but this node has no process starter; "
                    "use isolation='task' or register one with Node.register_isolation('process', …)"
                )
            self._preload(spec)
            _path, args, kwargs = spec.process_target(self.store_url)
            if fence is not None:
                kwargs = {**kwargs, "lease": fence}
            target = ChildSpec(
                id=child.id,
                start=AgentActor,
                args=args,
                kwargs=kwargs,
                restart=child.restart,
                shutdown=child.shutdown,
                isolation="process",
                max_memory_mb=spec.max_memory_mb,
                hang_after_s=spec.process_hang_after_s,
            )
        ref = await self.node.start_actor(target)
        self.specs[spec.name] = spec
        self.refs[spec.name] = ref
        ref.cast(("wake",))  # serve what was queued or interrupted before this incarnation
        return ref

    def upgrade(self, spec: AgentSpec) -> bool:
        """From now on ``spec.name`` starts as ``spec``; a live agent switches between two runs.
        Returns whether a live agent on this node was told."""
        self.upgrades[spec.name] = spec
        ref = self.refs.get(spec.name)
        running = self.specs.get(spec.name)
        if ref is None or not ref.alive or (running is not None and running.isolation != spec.isolation):
            return False  # a change of isolation needs a new process (or task): the next restart
        if spec.isolation == "process":
            self._preload(spec)
        ref.cast(("upgrade", spec.to_json() if spec.isolation == "process" else spec))
        self.specs[spec.name] = spec
        return True

    def _preload(self, spec: AgentSpec) -> None:
        """Have the node's process template import what this agent's process will: restarts fork warm."""
        wanted = [m for m in spec.process_modules() if m not in self._preloaded]
        if wanted:
            self._preloaded.update(wanted)
            self.node.preload(*wanted)

    # -- runs ---------------------------------------------------------------------------------------
    async def submit(
        self,
        agent: str,
        task: Any,
        run_id: str | None = None,
        *,
        priority: int = 0,
        concurrency_key: str | None = None,
        deadline: float | str | None = None,
    ) -> str:
        seconds = parse_deadline(deadline)
        if agent not in self.specs and agent not in self.remote:
            known = ", ".join(sorted(self.specs)) or "none"
            raise SpecError(f"no agent named {agent!r} was started on this node (known: {known})")
        store = await self.store()
        meta = deadline_meta(self.node.clock.time(), seconds)  # the clock its agents read
        submitted: list[Event] = []

        def events(rid: str) -> list[Event]:  # stored with the run, in its transaction
            submitted[:] = [Event("run.submitted", rid, {"run_id": rid, "agent": agent})]
            return submitted

        run, created = await store.create_run(
            agent,
            task,
            run_id=run_id,
            priority=priority,
            concurrency_key=concurrency_key,
            meta=meta or None,
            events=events,
        )
        if created:
            self.node.emit(submitted[0])
        if not self.wake(agent) and self.remote_wake is not None:
            await self.remote_wake(agent)
        return run.run_id

    async def result(self, run_id: str, timeout: float | None = None) -> RunResult:
        store = await self.store()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.005
        # a run ended by a Store of this process (a task agent's) wakes the wait at once; one
        # ended elsewhere (a process agent, another node) is found by reading, backing off
        with watch_run(run_id) as changed:
            while True:
                changed.clear()
                run = await store.get_run(run_id)
                if run.status in FINAL_STATUSES:
                    return RunResult(
                        run_id=run.run_id,
                        agent=run.agent,
                        status=run.status,  # type: ignore[arg-type]
                        output=run.output,
                        reason=run.reason,
                        model_calls=int(run.meta.get("model_calls", 0)),
                        replayed_calls=int(run.meta.get("replayed_calls", 0)),
                        cost_usd=run.spend_usd,
                    )
                if deadline is not None and loop.time() >= deadline:
                    raise CallTimeout(f"run {run_id!r} is still {run.status} after {timeout}s")
                if self._ends_here(run.agent):
                    delay = max(delay, LOCAL_RESULT_POLL_S)  # its end wakes us: reading is the fallback
                wait = delay if deadline is None else min(delay, max(0.0, deadline - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
                delay = min(delay * 2, LOCAL_RESULT_POLL_S if self._ends_here(run.agent) else 0.1)

    def _ends_here(self, agent: str) -> bool:
        """Whether ``agent``'s runs end in this process (a live task agent of this node)."""
        spec, ref = self.specs.get(agent), self.refs.get(agent)
        return spec is not None and spec.isolation == "task" and ref is not None and ref.alive

    async def resume(self, agent: str) -> int:
        """Lift the agent's pauses, queue its paused runs again and tell it; returns how many runs
        were resumed. One ``agent.resumed`` event says all of it: the pauses are lifted here, so the
        agent, told to resume, finds none left to announce."""
        store = await self.store()
        lifted: list[Event] = []
        await BudgetKeeper(StoreLedger(store), self.node.clock, emit=lifted.append).resume_agent(agent)
        paused = await store.list_runs(agent=agent, status="paused", limit=10_000)
        for run in paused:
            await store.update_run(run.run_id, status="queued", reason=None)
        causes = sorted({str(e.data.get("cause")) for e in lifted if e.data.get("cause")})
        data = {"agent": agent, "runs": [r.run_id for r in paused], "causes": causes}
        event = Event("agent.resumed", agent, data)
        await store.append_event(event)
        self.node.emit(event)
        ref = self.refs.get(agent)
        if ref is not None and ref.alive:
            ref.cast(("resume",))
        return len(paused)


def _look(sweep: bool, gate_now: float, run_now: float, tx: SyncTx) -> tuple[list[Event], list[Row]]:
    """The poller's one transaction: expired gates and overdue runs (``sweep``), then the agents
    with queued runs."""
    events: list[Event] = []
    if sweep:
        expire_due_in(tx, gate_now)
        events = sweep_overdue_in(tx, run_now)
    return events, tx.fetchall("SELECT DISTINCT agent FROM runs WHERE status = 'queued'")


def runs_of(node: Node) -> Runs:
    """The node's :class:`Runs` (made on first use): where its agents, leases and upgrades are kept."""
    runs = node.runs
    if not isinstance(runs, Runs):
        raise SpecError(f"node {node.name!r} has a run service of another kind ({type(runs).__name__})")
    return runs
