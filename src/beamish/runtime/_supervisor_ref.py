"""``SupervisorRef``: an ``ActorRef`` to a supervisor, with OTP's dynamic supervisor API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from beamish._exits import ExitReason, Normal
from beamish.runtime._ref import ActorRef
from beamish.runtime._specs import ChildCounts, ChildInfo, ChildSpec
from beamish.runtime._supervisor_api import Failure

_NORMAL = Normal()


class SupervisorRef(ActorRef):
    """A supervisor's ref: an ``ActorRef`` plus OTP's dynamic supervisor API.

    Refusals raise the ``SupervisorError`` subclasses named after OTP's error tuples.
    """

    __slots__ = ()

    async def _request(self, request: tuple[Any, ...], timeout: float | None) -> Any:
        reply = await self.call(request, timeout=timeout)
        if isinstance(reply, Failure):
            raise reply.error
        return reply

    async def stop(self, reason: ExitReason = _NORMAL, timeout: float | None = None) -> ExitReason:
        """Stop the supervisor (its children first, in reverse order); waits as long as that takes.

        As in OTP a supervisor's shutdown is ``infinity`` by default: each child's own ``shutdown``
        already bounds how long it may take. Pass ``timeout`` to kill the supervisor after it.
        """
        return await super().stop(reason, timeout)

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
        sup: Any = self._actor
        if sup is None:
            return False, None
        child = sup.by_id.get(child_id)
        if child is None:
            return False, None
        return True, child.ref

    def _next_change(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._node._loop.create_future()
        sup: Any = self._actor
        if sup is not None:
            sup.watchers.append(fut)
        else:
            fut.set_result(None)
        return fut
