"""The supervisor: an actor that traps exits and restarts its children by OTP's rules.

Mirrors OTP's ``supervisor`` module: children start in list order and a failed start unwinds the
started ones; shutdown goes in reverse order; restarts are counted in a sliding window on the node's
clock and escalate (stop all, exit ``Shutdown``) when it overflows; a restart that fails is retried
through the supervisor's own mailbox, so calls are answered between attempts. Beyond OTP: per-child
``Backoff`` delays and restart counts.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from beamish._exceptions import (
    ActorExited,
    SpecError,
    StartFailed,
)
from beamish._exits import Crashed, ExitReason, Shutdown
from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._messages import Exit
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import SupervisorSpec
from beamish.runtime._supervisor_api import Child, DynamicApi
from beamish.runtime._supervisor_ref import SupervisorRef


class _TryAgain:
    """A restart to (re)attempt, sent by the supervisor to itself."""

    __slots__ = ("child",)

    def __init__(self, child: Child) -> None:
        self.child = child


class Supervisor(DynamicApi, Actor):
    """The supervisor actor behind a :class:`SupervisorRef` (started with ``node.start_supervisor``)."""

    trap_exits = True
    child_type = "supervisor"

    async def init(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.path = self.ref.name if self.ref.name is not None else f"supervisor#{self.ref.id}"
        self.simple = spec.strategy == "simple_one_for_one"
        self.children: dict[Child, None] = {}
        self.by_id: dict[Any, Child] = {}
        self.by_ref: dict[ActorRef, Child] = {}
        self.restart_times: deque[float] = deque()
        self.timers: set[Any] = set()
        self.stopping: set[ActorRef] = set()
        self.watchers: list[asyncio.Future[None]] = []
        self.rng = random.Random()
        self.serial = 0
        if self.simple:
            return
        for child_spec in spec.children:
            child = Child(child_spec, f"{self.path}/{child_spec.id}")
            try:
                await self._start(child)
            except BaseException:
                await self._stop_children(list(self.children))
                raise
            if child.ref is None and child_spec.restart == "temporary":
                continue
            self._add(child)

    # -- bookkeeping --------------------------------------------------------------------------------
    def _add(self, child: Child) -> None:
        self.children[child] = None
        if not self.simple:
            self.by_id[child.spec.id] = child

    def _forget_last_ref(self, child: Child) -> None:
        last = child.last_ref
        if last is not None:
            child.last_ref = None
            if self.by_ref.get(last) is child:
                del self.by_ref[last]

    def _remove(self, child: Child) -> None:
        self._forget_last_ref(child)
        self.children.pop(child, None)
        if not self.simple and self.by_id.get(child.spec.id) is child:
            del self.by_id[child.spec.id]
        self._changed()

    def _changed(self) -> None:
        if not self.watchers:
            return
        watchers, self.watchers = self.watchers, []
        for fut in watchers:
            if not fut.done():
                fut.set_result(None)

    def _event(self, kind: str, child: Child, data: Any) -> None:
        self.ref._node._event(kind, child.path, data)

    # -- starting and stopping one child ------------------------------------------------------------
    async def _start(self, child: Child) -> None:
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

    async def _stop_child(self, child: Child) -> None:
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

    async def _stop_children(self, children: Sequence[Child]) -> None:
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

    def _delay_restart(self, child: Child) -> bool:
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

    async def _restart(self, child: Child) -> None:
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

    def _retry(self, child: Child) -> None:
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


Supervisor._ref_class = SupervisorRef
