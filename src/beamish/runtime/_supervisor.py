"""The supervisor: an actor that traps exits and restarts its children by OTP's rules.

Mirrors OTP's ``supervisor`` module: children start in list order and a failed start unwinds the
started ones; shutdown goes in reverse order; restarts are counted in a sliding window on the node's
clock and escalate (stop all, exit ``Shutdown``) when it overflows; a restart that fails is retried
through the supervisor's own mailbox, so calls are answered between attempts. Beyond OTP: per-child
``Backoff`` delays and restart counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from beamish._exceptions import (
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    NotFound,
    Restarting,
    Running,
    SimpleOneForOneError,
    SpecError,
    StartFailed,
)
from beamish._exits import Crashed, ExitReason, Shutdown
from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._messages import Exit
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import ChildCounts, ChildInfo, ChildSpec, SupervisorSpec


class _Child:
    """The supervisor's record of one child: its spec, current ref and restart bookkeeping."""

    __slots__ = ("attempts", "last_ref", "path", "ref", "restarting", "restarts", "spec", "started_at")

    def __init__(self, spec: ChildSpec, path: str) -> None:
        self.spec = spec
        self.path = path
        self.ref: ActorRef | None = None
        self.restarts = 0
        self.restarting = False
        self.attempts = 0  # consecutive failures, for the backoff
        self.started_at: float | None = None
        # simple_one_for_one: the exited ref still names a child while it is being restarted (OTP's
        # {restarting, Pid}), so terminate_child(old_ref) can stop the restart loop.
        self.last_ref: ActorRef | None = None


class _TryAgain:
    """A restart to (re)attempt, sent by the supervisor to itself."""

    __slots__ = ("child",)

    def __init__(self, child: _Child) -> None:
        self.child = child


class _Failure:
    """An error reply: the ref raises ``error`` in the caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Supervisor(Actor):
    """The supervisor actor behind a :class:`SupervisorRef` (started with ``node.start_supervisor``)."""

    trap_exits = True
    child_type = "supervisor"

    async def init(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.path = self.ref.name if self.ref.name is not None else f"supervisor#{self.ref.id}"
        self.simple = spec.strategy == "simple_one_for_one"
        self.children: dict[_Child, None] = {}
        self.by_id: dict[Any, _Child] = {}
        self.by_ref: dict[ActorRef, _Child] = {}
        self.restart_times: deque[float] = deque()
        self.timers: set[Any] = set()
        self.stopping: set[ActorRef] = set()
        self.watchers: list[asyncio.Future[None]] = []
        self.rng = random.Random()
        if self.simple:
            return
        for child_spec in spec.children:
            child = _Child(child_spec, f"{self.path}/{child_spec.id}")
            try:
                await self._start(child)
            except BaseException:
                await self._stop_children(list(self.children))
                raise
            if child.ref is None and child_spec.restart == "temporary":
                continue
            self._add(child)

    # -- bookkeeping --------------------------------------------------------------------------------
    def _add(self, child: _Child) -> None:
        self.children[child] = None
        if not self.simple:
            self.by_id[child.spec.id] = child

    def _forget_last_ref(self, child: _Child) -> None:
        last = child.last_ref
        if last is not None:
            child.last_ref = None
            if self.by_ref.get(last) is child:
                del self.by_ref[last]

    def _remove(self, child: _Child) -> None:
        self._forget_last_ref(child)
        self.children.pop(child, None)
        if not self.simple and self.by_id.get(child.spec.id) is child:
            del self.by_id[child.spec.id]
        self._changed()

    def _changed(self) -> None:
        watchers, self.watchers = self.watchers, []
        for fut in watchers:
            if not fut.done():
                fut.set_result(None)

    def _listening(self) -> bool:
        return self.ref._node._listening

    def _event(self, kind: str, child: _Child, data: Any) -> None:
        self.ref._node._event(kind, child.path, data)

    # -- starting and stopping one child ------------------------------------------------------------
    async def _start(self, child: _Child) -> None:
        """Start ``child``; ``child.ref`` stays ``None`` if it ignored. Raises ``StartFailed``."""
        spec = child.spec
        node = self.ref._node
        try:
            ref = await node._start_child(spec, self.ref, child.path)
        except Ignore:
            child.ref = None
            self._changed()
            return
        except (SpecError, asyncio.CancelledError):
            raise
        except ActorExited as exc:
            raise StartFailed(spec.id, exc.reason) from exc
        except Exception as exc:
            raise StartFailed(spec.id, Crashed(exc)) from exc
        child.ref = ref
        self.by_ref[ref] = child
        self._forget_last_ref(child)
        child.started_at = node.clock.monotonic()
        if node._listening:
            self._event("child.started", child, {"id": str(spec.id), "supervisor": self.path, "ref": ref.id})
        self._changed()

    async def _stop_child(self, child: _Child) -> None:
        """Stop a running child as its ``shutdown`` says (reverse-order shutdowns call this in turn)."""
        ref = child.ref
        if ref is None:
            return
        child.ref = None
        self.by_ref.pop(ref, None)
        node = self.ref._node
        node.unlink(self.ref, ref)
        if ref.alive:
            shutdown = child.spec.shutdown
            if shutdown == "brutal_kill":
                ref.kill()
            else:
                ref._request_stop(Shutdown())
                self.stopping.add(ref)  # unlinked now: if the supervisor dies meanwhile, on_exit kills it
                try:
                    if ref.alive and not await node._wait_exit(ref, shutdown):
                        ref.kill()
                finally:
                    self.stopping.discard(ref)
        if node._listening:
            reason = ref.reason
            assert reason is not None
            self._event("child.exited", child, lambda: {"id": str(child.spec.id), "reason": reason.to_json()})
        self._changed()

    async def _stop_children(self, children: Sequence[_Child]) -> None:
        """Stop ``children`` in reverse order (all at once for simple_one_for_one, as OTP does)."""
        if self.simple:
            await asyncio.gather(*(self._stop_child(c) for c in children if c.ref is not None))
            return
        for child in reversed(children):
            await self._stop_child(child)

    def on_exit(self, reason: ExitReason) -> None:
        for timer in getattr(self, "timers", ()):
            timer.cancel()
        for ref in list(getattr(self, "stopping", ())):
            ref.kill()  # no orphans: a child we were stopping is no longer linked to us
        if hasattr(self, "watchers"):
            self._changed()  # wake beamish.testing waiters: the supervisor is gone

    async def terminate(self, reason: ExitReason) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        await self._stop_children(list(self.children))

    # -- exits and restarts -------------------------------------------------------------------------
    async def handle_info(self, message: Any) -> None:
        if type(message) is Exit:
            await self._child_exited(message.ref, message.reason)
        elif type(message) is _TryAgain:
            # Let the loop run first, so callers get their requests in between two attempts
            # (OTP's scheduler would preempt the supervisor; asyncio needs the yield).
            await asyncio.sleep(0)
            child = message.child
            if child.restarting and child in self.children:
                await self._restart(child)

    async def _child_exited(self, ref: ActorRef, reason: ExitReason) -> None:
        child = self.by_ref.pop(ref, None)
        if child is None:
            return  # an exit from a child already stopped or replaced
        child.ref = None
        node = self.ref._node
        if node._listening:
            self._event("child.exited", child, lambda: {"id": str(child.spec.id), "reason": reason.to_json()})
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and not reason.normal):
            if self.simple:
                self.by_ref[ref] = child
                child.last_ref = ref
            backoff = child.spec.backoff
            if backoff is not None:
                now = node.clock.monotonic()
                if child.started_at is not None and now - child.started_at >= backoff.reset_after_s:
                    child.attempts = 0
                if self._delay_restart(child):
                    return
            await self._restart(child)
            return
        if restart == "temporary" or self.simple:
            self._remove(child)
        else:
            self._changed()
        if child.spec.significant:
            self._auto_shutdown()

    def _delay_restart(self, child: _Child) -> bool:
        """With a backoff, schedule the next attempt later; ``False`` if it should happen now."""
        backoff = child.spec.backoff
        child.restarting = True
        if backoff is None:
            self.ref.send(_TryAgain(child))
            return True
        child.attempts += 1
        delay = backoff.delay(child.attempts, self.rng.random())
        if delay <= 0:
            return False
        node = self.ref._node
        if node._listening:
            data = {"id": str(child.spec.id), "delay_s": delay, "attempt": child.attempts}
            self._event("child.restart_delayed", child, data)
        timer: Any = None

        def fire() -> None:
            self.timers.discard(timer)
            self.ref.send(_TryAgain(child))

        timer = node._after(delay, fire)
        self.timers.add(timer)
        self._changed()
        return True

    def _add_restart(self) -> bool:
        """Count a restart in the sliding window; ``False`` when the intensity is exceeded."""
        now = self.ref._node.clock.monotonic()
        times = self.restart_times
        times.append(now)
        threshold = now - self.spec.period
        while times and times[0] < threshold:
            times.popleft()
        return len(times) <= self.spec.intensity

    async def _restart(self, child: _Child) -> None:
        child.restarting = True
        if not self._add_restart():
            child.restarting = False
            node = self.ref._node
            if node._listening:
                data = {
                    "intensity": self.spec.intensity,
                    "period": self.spec.period,
                    "child": str(child.spec.id),
                }
                node._event("supervisor.escalated", self.path, data)
            self.stop(Shutdown("reached_max_restart_intensity"))
            return
        strategy = self.spec.strategy
        if strategy == "one_for_all":
            group = list(self.children)
        elif strategy == "rest_for_one":
            group = list(self.children)
            group = group[group.index(child) :]
        else:
            group = [child]
        for other in reversed(group):
            if other is child:
                continue
            await self._stop_child(other)
            if other.spec.restart == "temporary":
                self._remove(other)
        for member in group:
            if member.spec.restart == "temporary" and member.ref is None and member is not child:
                continue
            member.restarting = False
            try:
                await self._start(member)
            except (SpecError, StartFailed):
                self._retry(member)
                return
            if member.ref is not None:
                member.restarts += 1
                if self.ref._node._listening:
                    self._event(
                        "child.restarted", member, {"id": str(member.spec.id), "restarts": member.restarts}
                    )
            elif member.spec.restart == "temporary" or self.simple:
                self._remove(member)

    def _retry(self, child: _Child) -> None:
        """A restart failed: try again through the mailbox (after the backoff delay, if any)."""
        if not self._delay_restart(child):
            child.restarting = True
            self.ref.send(_TryAgain(child))

    def _auto_shutdown(self) -> None:
        mode = self.spec.auto_shutdown
        if mode == "never":
            return
        if mode == "all_significant" and any(c.spec.significant and c.ref is not None for c in self.children):
            return
        node = self.ref._node
        if node._listening:
            node._event("supervisor.auto_shutdown", self.path, {"mode": mode})
        self.stop(Shutdown("auto_shutdown"))

    # -- the dynamic API ----------------------------------------------------------------------------
    async def handle_call(self, request: Any) -> Any:
        op, *args = request
        try:
            return await getattr(self, "_op_" + op)(*args)
        except (SpecError, NotFound, AlreadyPresent, AlreadyStarted, Running, Restarting) as exc:
            return _Failure(exc)
        except (SimpleOneForOneError, StartFailed) as exc:
            return _Failure(exc)

    async def _op_which_children(self) -> list[ChildInfo]:
        return [
            ChildInfo(
                None if self.simple else c.spec.id,
                c.ref,
                c.spec.child_type,
                c.spec.restart,
                c.restarts,
                c.restarting,
            )
            for c in self.children
        ]

    async def _op_count_children(self) -> ChildCounts:
        active = sum(1 for c in self.children if c.ref is not None and c.ref.alive)
        if self.simple:
            template = self.spec.children[0]
            size = len(self.children)
            sups = size if template.child_type == "supervisor" else 0
            return ChildCounts(specs=1, active=active, supervisors=sups, workers=size - sups)
        sups = sum(1 for c in self.children if c.spec.child_type == "supervisor")
        return ChildCounts(
            specs=len(self.children), active=active, supervisors=sups, workers=len(self.children) - sups
        )

    async def _op_start_child(self, arg: Any, extra: dict[str, Any]) -> ActorRef | None:
        if self.simple:
            if isinstance(arg, ChildSpec) or not isinstance(arg, Sequence) or isinstance(arg, str):
                raise SpecError(f"simple_one_for_one start_child takes a sequence of extra args, got {arg!r}")
            template = self.spec.children[0]
            spec = dataclasses.replace(
                template, args=template.args + tuple(arg), kwargs={**template.kwargs, **extra}
            )
            child = _Child(spec, f"{self.path}/{template.id}")
        else:
            if not isinstance(arg, ChildSpec):
                raise SpecError(f"start_child expects a ChildSpec, got {arg!r}")
            if extra:
                raise SpecError(f"start_child with a ChildSpec takes no extra kwargs, got {sorted(extra)}")
            self.spec.check_child(arg)
            existing = self.by_id.get(arg.id)
            if existing is not None:
                if existing.ref is not None:
                    raise AlreadyStarted(f"child {arg.id!r} is already started: {existing.ref!r}")
                raise AlreadyPresent(f"a child spec with id {arg.id!r} is already present")
            child = _Child(arg, f"{self.path}/{arg.id}")
        await self._start(child)
        if child.ref is not None or (child.spec.restart != "temporary" and not self.simple):
            self._add(child)
        return child.ref

    def _find(self, key: Any) -> _Child:
        if self.simple:
            raise SimpleOneForOneError(
                "simple_one_for_one supervisors refuse this call (they have no child ids)"
            )
        child = self.by_id.get(key)
        if child is None:
            raise NotFound(f"no child with id {key!r}")
        return child

    async def _op_terminate_child(self, key: Any) -> None:
        if self.simple:
            if not isinstance(key, ActorRef):
                raise SimpleOneForOneError(
                    f"simple_one_for_one terminate_child takes a child's ref, got {key!r}"
                )
            found = self.by_ref.get(key)
            if found is None:
                if not key.alive:
                    return  # OTP: terminating a dead process is not an error
                raise NotFound(f"{key!r} is not a child of this supervisor")
            found.restarting = False
            await self._stop_child(found)
            self._remove(found)
            return
        child = self._find(key)
        child.restarting = False
        await self._stop_child(child)
        if child.spec.restart == "temporary":
            self._remove(child)

    async def _op_restart_child(self, key: Any) -> ActorRef | None:
        child = self._find(key)
        if child.restarting:
            raise Restarting(f"child {key!r} is being restarted")
        if child.ref is not None:
            raise Running(f"child {key!r} is running")
        await self._start(child)
        return child.ref

    async def _op_delete_child(self, key: Any) -> None:
        child = self._find(key)
        if child.restarting:
            raise Restarting(f"child {key!r} is being restarted")
        if child.ref is not None:
            raise Running(f"child {key!r} is running")
        self._remove(child)


class SupervisorRef(ActorRef):
    """A supervisor's ref: an ``ActorRef`` plus OTP's dynamic supervisor API.

    Refusals raise the ``SupervisorError`` subclasses named after OTP's error tuples.
    """

    __slots__ = ()

    async def _request(self, request: tuple[Any, ...], timeout: float | None) -> Any:
        reply = await self.call(request, timeout=timeout)
        if isinstance(reply, _Failure):
            raise reply.error
        return reply

    async def which_children(self, timeout: float | None = 5.0) -> list[ChildInfo]:
        """Every child in start order, with its ref (``None`` while not running) and restart count."""
        result: list[ChildInfo] = await self._request(("which_children",), timeout)
        return result

    async def count_children(self, timeout: float | None = 5.0) -> ChildCounts:
        """How many specs, running children, supervisors and workers."""
        result: ChildCounts = await self._request(("count_children",), timeout)
        return result

    async def start_child(
        self,
        spec_or_extra_args: ChildSpec | Sequence[Any] = (),
        timeout: float | None = None,
        **extra_kwargs: Any,
    ) -> ActorRef | None:
        """Add and start a child (a ``ChildSpec``; for simple_one_for_one, extra args for the template).

        Returns its ref, or ``None`` if it ignored. Raises ``AlreadyStarted`` / ``AlreadyPresent`` for
        a taken id, ``StartFailed`` if it failed to start (nothing is added), ``SpecError`` for a bad spec.
        """
        result: ActorRef | None = await self._request(
            ("start_child", spec_or_extra_args, extra_kwargs), timeout
        )
        return result

    async def terminate_child(self, child_id: Any, timeout: float | None = None) -> None:
        """Stop a child (its spec is kept unless temporary); for simple_one_for_one pass its ref."""
        await self._request(("terminate_child", child_id), timeout)

    async def restart_child(self, child_id: Any, timeout: float | None = None) -> ActorRef | None:
        """Start a stopped child again from its kept spec (``Running`` / ``Restarting`` / ``NotFound``)."""
        result: ActorRef | None = await self._request(("restart_child", child_id), timeout)
        return result

    async def delete_child(self, child_id: Any, timeout: float | None = None) -> None:
        """Forget a stopped child's spec (``Running`` / ``Restarting`` / ``NotFound``)."""
        await self._request(("delete_child", child_id), timeout)

    # -- for beamish.testing: observe without a call --------------------------------------------------
    def _child_ref(self, child_id: Any) -> tuple[bool, ActorRef | None]:
        """(known, running ref) for ``child_id`` right now."""
        sup = self._actor
        if not isinstance(sup, Supervisor):
            return False, None
        child = sup.by_id.get(child_id)
        if child is None:
            return False, None
        return True, child.ref

    def _next_change(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._node._loop.create_future()
        sup = self._actor
        if isinstance(sup, Supervisor):
            sup.watchers.append(fut)
        else:
            fut.set_result(None)
        return fut


Supervisor._ref_class = SupervisorRef
