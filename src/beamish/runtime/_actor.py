"""The ``Actor`` base class: the callbacks a user overrides, and the control-flow signal ``Ignore``.

An actor holds its state as plain attributes and serves one message at a time, so no lock is ever
needed. Its runtime record (mailbox, links, exit reason) lives on its :class:`~beamish.ActorRef`,
which is also what other actors hold; the actor object itself stays small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from beamish._exceptions import StopActor
from beamish._exits import ExitReason, Normal

if TYPE_CHECKING:
    from beamish.runtime._node import Node
    from beamish.runtime._ref import ActorRef

_NORMAL = Normal()


class Ignore(BaseException):
    """Raise from ``init`` to decline to start (OTP's ``ignore``): no error, no running child.

    A supervisor keeps the spec of an ignored child (unless it is temporary) with no running actor;
    ``restart_child`` may try again later. Control flow, so it derives from ``BaseException``.
    """


class Actor:
    """Subclass and override the async callbacks; start it with ``node.spawn`` or a ``ChildSpec``.

    ``init`` runs before the actor receives any message and may raise to fail the start (or
    :class:`Ignore`). An exception escaping any callback ends the actor as ``Crashed``;
    ``terminate(reason)`` runs on a polite stop, on ``self.stop`` and after a crash, but not when the
    actor is killed. Set ``trap_exits = True`` (class attribute, or in ``init``) to receive a linked
    actor's exit as an :class:`Exit` message in ``handle_info`` instead of exiting with it.
    """

    trap_exits: bool = False
    #: Reported as the child's type in ``which_children``.
    child_type: ClassVar[str] = "worker"
    #: True for beamish's own plumbing (a registry's poller): the node announces no
    #: ``actor.started``/``actor.exited`` for it, so events name only what an operator runs.
    internal: ClassVar[bool] = False

    _ref: ActorRef
    #: The ref class the node creates for this actor (supervisors get ``SupervisorRef``).
    _ref_class: ClassVar[type[ActorRef]]

    @property
    def ref(self) -> ActorRef:
        """This actor's own reference (hand it to others so they can call it)."""
        return self._ref

    @property
    def node(self) -> Node:
        """The node this actor runs in."""
        return self._ref._node

    async def init(self, *args: Any, **kwargs: Any) -> None:
        """Set up state. Runs synchronously inside the start: the starter waits for it."""

    async def handle_call(self, request: Any) -> Any:
        """Answer ``ref.call(request)``; the return value is the reply."""
        raise NotImplementedError(f"{type(self).__name__} got a call but has no handle_call: {request!r}")

    async def handle_cast(self, message: Any) -> None:
        """Handle ``ref.cast(message)`` (no reply)."""
        raise NotImplementedError(f"{type(self).__name__} got a cast but has no handle_cast: {message!r}")

    async def handle_info(self, message: Any) -> None:
        """Handle other messages: ``Down`` from monitors, ``Exit`` when trapping exits. Ignored by default."""

    async def terminate(self, reason: ExitReason) -> None:
        """Clean up before exiting with ``reason`` (not called when the actor is killed)."""

    def on_exit(self, reason: ExitReason) -> None:
        """Synchronous last word on *every* exit, kills included, after the actor is dead.

        For releasing what must not outlive the actor (a process proxy kills its OS process here).
        Must not block; exceptions are logged and ignored.
        """

    def stop(self, reason: ExitReason = _NORMAL) -> None:
        """End this actor with ``reason`` once the current callback returns (``terminate`` runs)."""
        self._ref._stop_reason = reason

    def exit_now(self, reason: ExitReason = _NORMAL) -> None:
        """Unwind the current callback at once and stop with ``reason`` (``terminate`` runs)."""
        raise StopActor(reason)

    def link(self, other: ActorRef) -> None:
        """Link this actor to ``other``: when either exits abnormally, the other gets the exit."""
        self._ref._node.link(self._ref, other)

    def unlink(self, other: ActorRef) -> None:
        """Remove a link made with :meth:`link`."""
        self._ref._node.unlink(self._ref, other)

    def monitor(self, other: ActorRef) -> int:
        """Watch ``other``: ``Down`` arrives in ``handle_info`` when it exits. Returns the monitor id."""
        return self._ref._node.monitor(self._ref, other)

    def __repr__(self) -> str:
        ref = getattr(self, "_ref", None)
        return f"<{type(self).__name__} {ref!r}>"
