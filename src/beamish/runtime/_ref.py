"""``ActorRef``: the handle to one actor incarnation, and the runtime record behind it.

The ref *is* the process record (mailbox, links, monitors, exit reason), so an actor costs one small
slotted object plus the actor itself. Its mailbox (a deque) and its task exist only while mail is
pending: an idle actor owns neither, which is why it is lighter than the obvious ``asyncio.Queue`` +
long-lived task design. Deaths are bookkept synchronously in :meth:`ActorRef._finish`: pending calls
fail with ``ActorExited``, links and monitors fire, and a running callback is cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from beamish._exceptions import ActorError, ActorExited, CallTimeout, StopActor
from beamish._exits import Crashed, ExitReason, Killed, Normal
from beamish.runtime._actor import Actor
from beamish.runtime._messages import Down, Exit

if TYPE_CHECKING:
    from beamish.runtime._node import Node

logger = logging.getLogger("beamish.runtime")

# States of an incarnation.
STARTING, RUNNING, STOPPING, EXITED = 0, 1, 2, 3
_STATE_NAMES = ("starting", "running", "stopping", "exited")
# Mailbox entry kinds: (kind, payload, reply future or None).
CALL, CAST, INFO, STOP = 0, 1, 2, 3

_NORMAL = Normal()
_ids = itertools.count(1)
#: Messages served in a row before the serving loop yields to the event loop (fairness: asyncio
#: does not preempt, so an actor feeding itself mail would otherwise starve every other task).
_FAIR_BATCH = 64
_base_terminate = Actor.terminate

Message = tuple[int, Any, "asyncio.Future[Any] | None"]


def _expire_call(fut: asyncio.Future[Any], timeout: float, name: str | None) -> None:
    if not fut.done():
        who = f"actor {name!r}" if name else "actor"
        fut.set_exception(CallTimeout(f"{who} did not reply within {timeout}s"))


class ActorRef:
    """A reference to one actor incarnation (like an Erlang pid).

    Refs are hashable and equal exactly when they name the same incarnation; a restarted child gets a
    new ref. ``call`` to a dead actor raises ``ActorExited``; calls pending when the actor dies fail
    with ``ActorExited`` too, so none hang.
    """

    __slots__ = (
        "_actor",
        "_current",
        "_links",
        "_mailbox",
        "_monitors",
        "_node",
        "_parent",
        "_reason",
        "_state",
        "_stop_reason",
        "_task",
        "_waiters",
        "_watching",
        "id",
        "name",
    )

    def __init__(self, node: Node, actor: Actor | None, name: str | None = None) -> None:
        self._node = node
        self._actor = actor
        self.id: int = next(_ids)
        self.name = name
        self._state = STARTING
        self._mailbox: deque[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._reason: ExitReason | None = None
        self._links: set[ActorRef] | None = None
        self._monitors: dict[int, ActorRef] | None = None
        self._watching: dict[int, ActorRef] | None = None
        self._waiters: list[asyncio.Future[ExitReason | None]] | None = None
        self._stop_reason: ExitReason | None = None
        self._current: asyncio.Future[Any] | None = None
        self._parent: ActorRef | None = None

    # -- public -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True until the actor has exited."""
        return self._state != EXITED

    @property
    def reason(self) -> ExitReason | None:
        """The exit reason once the actor has exited, else ``None``."""
        return self._reason

    @property
    def node(self) -> Node:
        """The node the actor runs in."""
        return self._node

    @property
    def os_pid(self) -> int | None:
        """The OS pid of the actor's own process (``isolation="process"``), else ``None``.

        So tools that inspect or signal the process (``ps``, fault injection) need not know how
        isolation is built. ``None`` for task actors, and once a process actor has exited.
        """
        return None

    async def call(self, request: Any, timeout: float | None = 5.0) -> Any:
        """Send ``request`` to ``handle_call`` and wait for the reply.

        Raises ``ActorExited`` if the actor is dead or dies before replying, ``CallTimeout`` after
        ``timeout`` seconds (``None`` waits for ever).
        """
        if self._state == EXITED:
            raise ActorExited(self._reason, self.name)
        task = self._task
        if task is not None and task is asyncio.current_task():
            raise ActorError(f"{self!r} called itself: it would wait for its own reply for ever")
        loop = self._node._loop
        fut: asyncio.Future[Any] = loop.create_future()
        self._deliver(CALL, request, fut)
        if timeout is None:
            return await fut
        handle = loop.call_later(timeout, _expire_call, fut, timeout, self.name)
        try:
            return await fut
        finally:
            handle.cancel()

    def cast(self, message: Any) -> None:
        """Send ``message`` to ``handle_cast`` without waiting; dropped if the actor is dead."""
        self._deliver(CAST, message, None)

    def send(self, message: Any) -> None:
        """Send ``message`` to ``handle_info`` (a plain message, like Erlang's ``!``)."""
        self._deliver(INFO, message, None)

    async def stop(self, reason: ExitReason = _NORMAL, timeout: float | None = 5.0) -> ExitReason:
        """Ask the actor to stop with ``reason`` after its current message; kill it after ``timeout``.

        Returns the exit reason (``Killed`` if it had to be killed). ``timeout`` is measured on the
        node's clock; ``None`` waits for ever.
        """
        if self._state != EXITED:
            task = self._task
            if task is not None and task is asyncio.current_task():
                raise ActorError("an actor cannot wait for its own stop; use self.stop(reason)")
            self._request_stop(reason)
            if self._state != EXITED and not await self._node._wait_exit(self, timeout):
                self.kill()
        assert self._reason is not None
        return self._reason

    def kill(self, reason: ExitReason | None = None) -> None:
        """Kill the actor at once (OTP's ``exit(Pid, kill)``): no ``terminate``, reason ``Killed``.

        A watchdog may pass the reason it killed for (e.g. ``Hung(...)``), so the supervisor and the
        journal see why.
        """
        self._finish(reason if reason is not None else Killed())

    async def wait(self) -> ExitReason:
        """Wait for the actor to exit and return its exit reason."""
        if self._state == EXITED:
            assert self._reason is not None
            return self._reason
        reason = await self._exit_future()
        assert reason is not None
        return reason

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<ActorRef #{self.id}{label} {_STATE_NAMES[self._state]}>"

    # -- delivery -----------------------------------------------------------------------------------
    def _exit_future(self) -> asyncio.Future[ExitReason | None]:
        fut: asyncio.Future[ExitReason | None] = self._node._loop.create_future()
        if self._state == EXITED:
            fut.set_result(self._reason)
            return fut
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        return fut

    def _deliver(self, kind: int, payload: Any, fut: asyncio.Future[Any] | None) -> None:
        state = self._state
        if state == EXITED:
            if fut is not None and not fut.done():
                fut.set_exception(ActorExited(self._reason, self.name))
            return
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = deque()
        mailbox.append((kind, payload, fut))
        if self._task is None and state == RUNNING:
            self._task = self._node._loop.create_task(self._run())

    def _started(self) -> None:
        """``init`` returned: begin serving whatever mail arrived meanwhile."""
        self._state = RUNNING
        if self._mailbox:
            self._task = self._node._loop.create_task(self._run())

    def _request_stop(self, reason: ExitReason) -> None:
        """A polite stop: ``terminate`` runs after the current message, ahead of queued mail."""
        state = self._state
        if state >= STOPPING:
            return
        actor = self._actor
        if (
            state == RUNNING
            and self._task is None
            and not self._mailbox
            and type(actor).terminate is _base_terminate  # type: ignore[union-attr]
        ):
            self._finish(reason)  # idle, nothing to clean up: no need to schedule anything
            return
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = deque()
        mailbox.appendleft((STOP, reason, None))
        if self._task is None and state == RUNNING:
            self._task = self._node._loop.create_task(self._run())

    def _exit_signal(self, sender: ActorRef, reason: ExitReason) -> None:
        """A linked actor exited (OTP exit-signal semantics)."""
        if self._state == EXITED:
            return
        actor = self._actor
        if actor is not None and actor.trap_exits:
            if sender is self._parent:
                self._request_stop(reason)  # gen_server: an exit from the parent ends it, terminate runs
            else:
                self._deliver(INFO, Exit(sender, reason), None)
        elif not isinstance(reason, Normal):
            self._finish(reason)

    # -- the serving loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        actor = self._actor
        assert actor is not None
        served = 0
        try:
            while True:
                mailbox = self._mailbox
                if not mailbox:
                    self._mailbox = None
                    self._task = None
                    return
                served += 1
                if served % _FAIR_BATCH == 0:
                    await asyncio.sleep(0)
                    if self._state != RUNNING:
                        return
                    continue
                kind, payload, fut = mailbox.popleft()
                if kind == CALL:
                    assert fut is not None
                    if fut.done():
                        continue  # the caller gave up
                    self._current = fut
                    reply = await actor.handle_call(payload)
                    self._current = None
                    if not fut.done():
                        fut.set_result(reply)
                elif kind == CAST:
                    await actor.handle_cast(payload)
                elif kind == INFO:
                    await actor.handle_info(payload)
                else:
                    await self._shutdown(payload)
                    return
                if self._state != RUNNING:
                    return
                if self._stop_reason is not None:
                    await self._shutdown(self._stop_reason)
                    return
        except asyncio.CancelledError:
            if self._state == EXITED:
                return  # killed: the bookkeeping is done
            self._finish(Killed())
            raise
        except StopActor as stop:
            if self._state != EXITED:
                await self._shutdown(stop.reason)
        except Exception as exc:
            if self._state != EXITED:
                logger.debug("actor %r crashed: %s: %s", self, type(exc).__name__, exc)
                await self._shutdown(Crashed(exc))
        except BaseException as exc:  # KeyboardInterrupt / SystemExit: record, then let it go on
            self._finish(Crashed(exc))
            raise

    async def _shutdown(self, reason: ExitReason) -> None:
        """Run ``terminate(reason)`` and exit with ``reason``, from the serving task."""
        self._state = STOPPING
        actor = self._actor
        assert actor is not None
        if type(actor).terminate is not _base_terminate:  # the base one does nothing: no await
            try:
                await actor.terminate(reason)
            except asyncio.CancelledError:
                if self._state == EXITED:
                    return  # killed while terminating (shutdown timeout)
                self._finish(reason)
                raise
            except BaseException as exc:  # a failing terminate does not change why the actor stopped
                logger.debug("terminate of %r raised %s: %s", self, type(exc).__name__, exc)
        task, self._task = self._task, None  # it ends right after: no need to cancel it
        parent = self._parent
        if task is None or parent is None or parent._task is not None or parent._state != RUNNING:
            self._finish(reason)
            return
        # An idle parent (a supervisor) hears of this exit through its mailbox. This task ends here
        # anyway, so it serves that mail itself: the restart happens now, not after one more task and
        # loop iteration (which made a crash's restart cost twice a kill's).
        parent._task = task
        self._finish(reason)
        if parent._task is task:
            if parent._mailbox:
                await parent._run()
            else:
                parent._task = None

    # -- death --------------------------------------------------------------------------------------
    def _finish(self, reason: ExitReason) -> None:
        """The actor is dead: fail pending calls, fire links and monitors, cancel its callback."""
        if self._state == EXITED:
            return
        self._state = EXITED
        self._reason = reason
        actor = self._actor
        self._actor = None
        task = self._task
        if task is not None:
            self._task = None
            task.cancel()
        mailbox = self._mailbox
        if mailbox is not None:
            self._mailbox = None
            for _, _, fut in mailbox:
                if fut is not None and not fut.done():
                    fut.set_exception(ActorExited(reason, self.name))
        current = self._current
        if current is not None:
            self._current = None
            if not current.done():
                current.set_exception(ActorExited(reason, self.name))
        if actor is not None:
            try:
                actor.on_exit(reason)
            except Exception as exc:
                logger.warning("on_exit of %r raised %s: %s", self, type(exc).__name__, exc)
        self._node._on_exit(self)
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(reason)
        watching = self._watching
        if watching:
            self._watching = None
            for mid, target in watching.items():
                if target._monitors:
                    target._monitors.pop(mid, None)
        monitors = self._monitors
        if monitors:
            self._monitors = None
            for mid, watcher in monitors.items():
                if watcher._watching:
                    watcher._watching.pop(mid, None)
                watcher._deliver(INFO, Down(self, reason, mid), None)
        links = self._links
        if links:
            self._links = None
            for other in links:
                if other._links:
                    other._links.discard(self)
                other._exit_signal(self, reason)


Actor._ref_class = ActorRef
