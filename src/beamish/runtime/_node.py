"""``Node``: the runtime host — spawning, names, links and monitors, isolation starters, events.

Starting is synchronous as in OTP's ``start_link``: ``init`` runs inside the starter's own task (no
extra loop hop), and the starter learns at once whether the actor started, failed or ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from beamish._clock import SYSTEM_CLOCK, Clock, SystemClock
from beamish._exceptions import ActorExited, NameTaken, SpecError, StartFailed
from beamish._exits import Crashed, Killed, Shutdown
from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._events import NodeEvents
from beamish.runtime._links import NodeLinks
from beamish.runtime._loopwatch import LoopWatchdog, watch_loop
from beamish.runtime._process import node_closed, start_process_child, warm
from beamish.runtime._process import preload as preload_modules
from beamish.runtime._ref import EXITED, ActorRef
from beamish.runtime._specs import ISOLATIONS, ChildSpec, SupervisorSpec
from beamish.runtime._supervisor import Supervisor
from beamish.runtime._supervisor_ref import SupervisorRef

logger = logging.getLogger("beamish.runtime")

#: ``async def starter(node, spec) -> ActorRef``: starts a child in another isolation (a proxy's ref).
Starter = Callable[["Node", ChildSpec], Awaitable[ActorRef]]


class RunService(Protocol):
    """What ``node.submit/result/resume`` forward to: the agent layer's runs, registered on the node
    with :meth:`Node.register_runs` (the runtime itself knows nothing of agents)."""

    async def submit(
        self,
        agent: str,
        task: Any,
        run_id: str | None = None,
        *,
        priority: int = 0,
        concurrency_key: str | None = None,
        deadline: float | str | None = None,
    ) -> str: ...

    async def result(self, run_id: str, timeout: float | None = None) -> Any: ...

    async def resume(self, agent: str) -> int: ...


def _resolve_none(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


class _RegisterIsolation:
    """``Node.register_isolation`` registers for every node; ``node.register_isolation`` for one."""

    def __get__(self, node: Node | None, owner: type[Node]) -> Callable[[str, Starter], None]:
        def register(kind: str, starter: Starter) -> None:
            if kind == "task":
                raise SpecError("isolation 'task' is built in and cannot be replaced")
            if kind not in ISOLATIONS:
                raise SpecError(f"register_isolation({kind!r}, ...): isolation must be one of {ISOLATIONS}")
            if not callable(starter):
                raise SpecError(f"register_isolation({kind!r}, ...): starter must be an async callable")
            registry = owner._class_isolation if node is None else node._isolation
            registry[kind] = starter

        return register


class Node(NodeEvents, NodeLinks):
    """The runtime host: ``async with Node() as node`` … actors and supervisors live inside it.

    ``store`` is kept as :attr:`store_url` for the journal; ``clock`` drives restart windows,
    backoff and shutdown timeouts (a ``FakeClock`` in tests). Closing the node stops its top-level
    actors and supervisors in reverse start order, killing what does not stop within
    ``shutdown_timeout`` seconds. A node belongs to one event loop: use it from that loop's thread.

    Entering the node starts a watchdog thread on that loop (``loop_watch_s``, ``None`` to go
    without): all its actors share the loop, so a callback that blocks it (``time.sleep``, a CPU
    loop) stalls every actor, and only a thread can see that. A stall longer than ``loop_watch_s``
    seconds becomes a ``node.loop_blocked`` event naming the actor and its stack.
    """

    #: Built-in isolations beyond "task" (``Node.register_isolation`` adds or replaces one).
    _class_isolation: ClassVar[dict[str, Starter]] = {"process": start_process_child}
    register_isolation = _RegisterIsolation()
    _run_factory: ClassVar[Callable[[Node], RunService] | None] = None

    def __init__(
        self,
        store: str | None = None,
        clock: Clock | None = None,
        *,
        name: str = "node",
        shutdown_timeout: float | None = 30.0,
        loop_watch_s: float | None = 0.25,
    ) -> None:
        if loop_watch_s is not None and not (
            isinstance(loop_watch_s, int | float)
            and not isinstance(loop_watch_s, bool)
            and math.isfinite(loop_watch_s)
            and loop_watch_s > 0
        ):
            raise SpecError(f"Node(loop_watch_s={loop_watch_s!r}) is invalid: expected seconds > 0 or None")
        self.store_url = store
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        self.loop_watch_s = loop_watch_s
        self._loop_watch: LoopWatchdog | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # bound on first use
        self._system_clock = isinstance(self.clock, SystemClock)
        self._names: dict[str, ActorRef] = {}
        self._top: dict[ActorRef, None] = {}
        self._isolation: dict[str, Starter] = {}
        self._init_events()
        self._monitor_ids = itertools.count(1)
        self._closing = False
        self._runs: RunService | None = None

    @classmethod
    def register_runs(cls, factory: Callable[[Node], RunService]) -> None:
        """Make ``factory(node)`` the run service of every node (``beamish.agent`` registers its
        ``Runs`` when imported): the higher layer plugs itself in, the runtime imports nothing of it."""
        if not callable(factory):
            raise SpecError(f"Node.register_runs({factory!r}): expected a callable taking the node")
        cls._run_factory = factory

    @property
    def runs(self) -> RunService:
        """This node's run service, made on first use (see :meth:`register_runs`)."""
        if self._runs is None:
            factory = type(self)._run_factory
            if factory is None:
                raise SpecError(
                    "node.submit/result/resume need the agent layer: import beamish (or beamish.agent)"
                )
            self._runs = factory(self)
        return self._runs

    # -- lifecycle ----------------------------------------------------------------------------------
    async def __aenter__(self) -> Node:
        self._bind()
        if self.loop_watch_s is not None and self._loop_watch is None and not self._closing:
            self._loop_watch = watch_loop(self, self.loop_watch_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def loop_watchdog(self) -> LoopWatchdog | None:
        """The watchdog on this node's loop while the node is entered (None with ``loop_watch_s=None``):
        its ``heartbeats`` and ``responsive()`` tell a service manager and probes the loop is alive."""
        return self._loop_watch

    def _bind(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Stop every top-level actor and supervisor, newest first; then flush and end event streams."""
        if self._closing:
            return
        self._closing = True
        for ref in reversed(list(self._top)):
            if ref.alive:
                await ref.stop(Shutdown("node closing"), timeout=self.shutdown_timeout)
        if self._loop_watch is not None:  # after the actors: a stall while they stop is still seen
            self._loop_watch.stop()
            self._loop_watch = None

        node_closed(self)
        self._flush()
        for stream in list(self._streams):
            stream._close()

    # -- starting -----------------------------------------------------------------------------------
    async def spawn(
        self, actor_cls: type[Actor], /, *args: Any, name: str | None = None, **kwargs: Any
    ) -> ActorRef:
        """Start an actor (not supervised): its ``init(*args, **kwargs)`` runs before this returns.

        ``name`` registers it for :meth:`whereis` (``NameTaken`` if a live actor has it). An exception
        from ``init`` propagates; ``Ignore`` becomes ``StartFailed(..., "ignore")``.
        """
        self._bind()
        if not (isinstance(actor_cls, type) and issubclass(actor_cls, Actor)):
            raise SpecError(f"spawn: {actor_cls!r} is not an Actor subclass")
        try:
            ref = await self._start_actor(actor_cls, args, kwargs, name, None, True)
        except Ignore:
            raise StartFailed(name or actor_cls.__name__, "ignore") from None
        self._top[ref] = None
        if self._listening and not actor_cls.internal:
            self._event("actor.started", self._subject(ref), {"actor": actor_cls.__qualname__})
        return ref

    async def start_supervisor(self, spec: SupervisorSpec, name: str | None = "root") -> SupervisorRef:
        """Start a supervision tree; returns its ``SupervisorRef`` once every child has started.

        A child failing to start stops the ones already started (in reverse order) and raises
        ``StartFailed`` naming it.
        """
        if not isinstance(spec, SupervisorSpec):
            raise SpecError(f"start_supervisor: expected a SupervisorSpec, got {spec!r}")
        self._bind()
        ref = await self._start_actor(Supervisor, (spec,), {}, name, None, True)
        assert isinstance(ref, SupervisorRef)
        self._top[ref] = None
        if self._listening:
            self._event(
                "actor.started", self._subject(ref), {"actor": "Supervisor", "strategy": spec.strategy}
            )
        return ref

    async def _start_actor(
        self,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: Any,
        name: str | None,
        parent: ActorRef | None,
        register: bool,
    ) -> ActorRef:
        actor = cls()
        ref = cls._ref_class(self, actor, name)
        actor._ref = ref
        if register and name is not None:
            current = self._names.get(name)
            if current is not None and current.alive:
                raise NameTaken(f"the name {name!r} is taken by {current!r}")
            self._names[name] = ref
        ref._parent = parent
        try:
            await actor.init(*args, **kwargs)
        except asyncio.CancelledError:
            ref._finish(Killed())
            raise
        except Ignore:
            ref._finish(Shutdown("ignore"))
            raise
        except BaseException as exc:
            ref._finish(Crashed(exc))
            raise
        if ref._state == EXITED:
            raise ActorExited(ref._reason, name)  # killed while its init ran
        if ref._stop_reason is not None:
            ref._finish(ref._stop_reason)
            raise ActorExited(ref._reason, name)
        if parent is not None:
            self.link(parent, ref)
        ref._started()
        return ref

    async def start_actor(self, spec: ChildSpec) -> ActorRef:
        """Start one actor as ``spec`` describes, in its isolation, but linked to nothing.

        For a layer that keeps actors of its own outside any supervisor (and so restarts and stops
        them itself): ``start``, ``args``, ``kwargs`` and ``isolation`` (with ``hang_after_s`` and
        ``max_memory_mb``) count as in a supervisor; ``restart`` and ``shutdown`` are the caller's.
        ``spec.id`` labels the ref; it is not registered for :meth:`whereis`, and closing the node
        does not stop it. ``Ignore`` from ``init`` propagates, so a ``ChildStarter`` built on this
        tells its supervisor to ignore the child, as a class ``start`` would.
        """
        if not isinstance(spec, ChildSpec):
            raise SpecError(f"start_actor: expected a ChildSpec, got {spec!r}")
        self._bind()
        return await self._start_from_spec(spec, str(spec.id), None)

    def isolation_starter(self, kind: str) -> Starter | None:
        """The starter for isolation ``kind`` on this node (its own, else every node's), or ``None``.

        Lets a layer refuse a spec it cannot start before doing any work for it. ``"task"`` is built
        in and has no starter (``None``).
        """
        if kind not in ISOLATIONS:
            raise SpecError(f"isolation_starter({kind!r}): isolation must be one of {ISOLATIONS}")
        return self._isolation.get(kind) or Node._class_isolation.get(kind)

    def preload(self, *modules: str) -> None:
        """Have this node's process template import ``modules``, so process children start warm.

        Every ``isolation="process"`` child is forked from that template: what it imported, no child
        imports again. Named before the template runs, they are imported as it starts (a failing
        import fails that start with its traceback); once it runs, before its next fork.
        """
        for module in modules:
            if not isinstance(module, str) or not module:
                raise SpecError(f"preload: {module!r} is not a module name")
        preload_modules(self, *modules)

    async def warm_processes(self) -> None:
        """Start the process template now (with what :meth:`preload` named), before any process child.

        So the first process start does not wait for it, and no hang timer counts its imports. It
        stops when the node closes.
        """
        self._bind()
        await warm(self)

    async def _start_child(self, spec: ChildSpec, parent: ActorRef, name: str) -> ActorRef:
        """Start one supervised child (linked to ``parent``), dispatching on ``start`` and isolation."""
        return await self._start_from_spec(spec, name, parent)

    async def _start_from_spec(self, spec: ChildSpec, name: str, parent: ActorRef | None) -> ActorRef:
        """Start ``spec`` in its isolation; linked to ``parent`` unless that is ``None``."""
        start = spec.start
        if spec.isolation == "task":
            if isinstance(start, type):
                return await self._start_actor(start, spec.args, spec.kwargs, name, parent, False)
            if isinstance(start, SupervisorSpec):
                return await self._start_actor(Supervisor, (start,), {}, name, parent, False)
            ref = await start.start_child(self, spec)
        else:
            starter = self.isolation_starter(spec.isolation)
            if starter is None:
                raise SpecError(
                    f"ChildSpec {spec.id!r}: isolation={spec.isolation!r} has no starter on this node "
                    f"(register one with Node.register_isolation({spec.isolation!r}, starter))"
                )
            ref = await starter(self, spec)
        if not isinstance(ref, ActorRef):
            raise SpecError(f"ChildSpec {spec.id!r}: its start returned {ref!r}, not an ActorRef")
        ref._parent = parent
        if parent is not None:
            self.link(parent, ref)
        return ref

    # -- runs: the agent layer's API, reached through the node (see :attr:`runs`) -------------------------
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
        """Give ``agent`` a task; returns the run_id (the idempotency key: the same id runs once).

        The run joins the agent's queue: higher ``priority`` first, first in first out within a
        priority; runs sharing a ``concurrency_key`` (a customer, a repository) run one at a time.
        ``deadline`` (seconds, or ``"5m"``, from now): the run leaves a failing model for its
        fallback sooner as it nears, and a run that misses it is ``needs_attention`` and alerted.
        """
        return await self.runs.submit(
            agent, task, run_id, priority=priority, concurrency_key=concurrency_key, deadline=deadline
        )

    async def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait until run ``run_id`` ends: its ``RunResult`` (``CallTimeout`` after ``timeout`` s)."""
        return await self.runs.result(run_id, timeout)

    async def resume(self, agent: str) -> int:
        """Un-pause ``agent``: its paused runs continue from their journals; returns how many."""
        return await self.runs.resume(agent)

    # -- names --------------------------------------------------------------------------------------
    def whereis(self, name: str) -> ActorRef | None:
        """The live actor registered as ``name``, or ``None``."""
        ref = self._names.get(name)
        return ref if ref is not None and ref.alive else None

    def _subject(self, ref: ActorRef) -> str:
        return ref.name if ref.name is not None else f"actor#{ref.id}"

    def _on_exit(self, ref: ActorRef) -> None:
        name = ref.name
        if name is not None and self._names.get(name) is ref:
            del self._names[name]
        if ref in self._top:
            del self._top[ref]
            if self._listening and not getattr(type(ref._actor), "internal", False):
                reason = ref._reason
                assert reason is not None
                self._event("actor.exited", self._subject(ref), lambda: {"reason": reason.to_json()})

    # -- timing -------------------------------------------------------------------------------------
    async def _wait_exit(self, ref: ActorRef, timeout: float | str | None) -> bool:
        """Wait for ``ref`` to exit; ``False`` if ``timeout`` (seconds on the node's clock) passed first."""
        if ref._state == EXITED:
            return True
        fut = ref._exit_future()
        if timeout is None or timeout == "infinity" or (isinstance(timeout, float) and math.isinf(timeout)):
            await fut
            return True
        assert isinstance(timeout, int | float)
        timer = self._after(float(timeout), _resolve_none, fut)
        try:
            return (await fut) is not None
        finally:
            timer.cancel()

    def _after(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        """Call ``callback(*args)`` after ``delay`` seconds on the node's clock; ``.cancel()`` stops it."""
        if self._system_clock:
            return self._loop.call_later(delay, callback, *args)
        call_later = getattr(self.clock, "call_later", None)
        if call_later is not None:  # e.g. FakeClock: registers now, so a jump right after fires it
            handle: Any = call_later(delay, callback, *args)
            return handle

        async def later() -> None:
            await self.clock.sleep(delay)
            callback(*args)

        return self._loop.create_task(later())
