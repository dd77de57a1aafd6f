"""The supervisor's dynamic API (OTP's ``start_child`` … ``count_children``) and its child records.

A mixin of :class:`~beamish.runtime._supervisor.Supervisor`: each ``_op_*`` method answers one
``SupervisorRef`` request; refusals are returned as :class:`Failure` and raised in the caller, so a
bad request never crashes the supervisor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from beamish._exceptions import (
    AlreadyPresent,
    AlreadyStarted,
    NotFound,
    Restarting,
    Running,
    SimpleOneForOneError,
    SpecError,
    StartFailed,
)
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import ChildCounts, ChildInfo, ChildSpec, SupervisorSpec


class Child:
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


class Failure:
    """An error reply: the ref raises ``error`` in the caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class DynamicApi:
    """``handle_call`` for the dynamic API; the supervisor provides the state and primitives."""

    if TYPE_CHECKING:
        spec: SupervisorSpec
        simple: bool
        path: str
        children: dict[Child, None]
        by_id: dict[Any, Child]
        by_ref: dict[ActorRef, Child]
        serial: int

        async def _start(self, child: Child) -> None: ...
        async def _stop_child(self, child: Child) -> None: ...
        def _add(self, child: Child) -> None: ...
        def _remove(self, child: Child) -> None: ...

    async def handle_call(self, request: Any) -> Any:
        op, *args = request
        try:
            return await getattr(self, "_op_" + op)(*args)
        except (SpecError, NotFound, AlreadyPresent, AlreadyStarted, Running, Restarting) as exc:
            return Failure(exc)
        except (SimpleOneForOneError, StartFailed) as exc:
            return Failure(exc)

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
            self.serial += 1  # dynamic children share the template's id: number them for events
            child = Child(spec, f"{self.path}/{template.id}.{self.serial}")
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
            child = Child(arg, f"{self.path}/{arg.id}")
        await self._start(child)
        if child.ref is not None or (child.spec.restart != "temporary" and not self.simple):
            self._add(child)
        return child.ref

    def _find(self, key: Any) -> Child:
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
