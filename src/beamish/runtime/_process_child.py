"""The child side of process isolation: one actor, its own asyncio loop, one socket to the node.

Forked from the zygote (:mod:`beamish.runtime._zygote`), the child resolves its actor class by import
path (``"module:qualname"``: the class must live at module level, not inside a function; a class of
the main script is found by loading the script's file under another name, as ``multiprocessing``
does, so its ``if __name__ == "__main__":`` block does not run again). The actor's ``init`` args
cross as JSON. It then serves frames exactly as a task actor serves its mailbox — in fact under a
node of its own. Frames (see :mod:`beamish.runtime._wire` for the encoding):

* node → child: ``call {id, req}``, ``cast {msg}``, ``info {msg}``, ``stop {reason}``.
* child → node: ``ready {v, pid}`` once ``init`` returned (``ignore`` if it raised ``Ignore``);
  ``reply {id, value}`` (or ``{id, error}`` when the reply cannot be encoded); ``hb`` every
  ``hb_s`` seconds from the loop — a loop that stops beating is a hung child; ``exit {reason}`` as
  the last frame, the reason in its journal JSON (a ``Crashed`` carries the remote traceback).

The child ends when its actor ends, when the node asks it to stop, or when its socket reaches EOF
(the node is gone). ``max_memory_mb`` is enforced here with ``RLIMIT_AS`` (a backstop: an allocation
past it raises ``MemoryError``, reported as ``MemoryExceeded``) and in the node by polling RSS.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import os
import resource
import signal
import socket
from typing import Any

from beamish._exceptions import IsolationError, StartFailed
from beamish._exits import Crashed, ExitReason, MemoryExceeded, Shutdown, exit_from_json
from beamish._proctitle import set_title
from beamish.runtime._actor import Actor
from beamish.runtime._node import Node
from beamish.runtime._paths import resolve
from beamish.runtime._procfs import _vm_size_bytes, rss_mb
from beamish.runtime._ref import CALL, CAST, INFO, ActorRef
from beamish.runtime._wire import WIRE_VERSION, FrameProtocol

#: After the node's socket closes, how long the actor's ``terminate`` may take before a kill.
NODE_GONE_GRACE_S = 1.0


class ChildHost:
    """Runs one actor under a node of its own in this process and speaks frames with the node.

    The actor is spawned by a real :class:`~beamish.runtime._node.Node` inside the child, so every
    callback rule holds as for a task actor (one message at a time, ``self.stop``, ``exit_now``,
    ``terminate``, crashes); this class only turns frames into mailbox deliveries and back.
    """

    def __init__(self, sock: socket.socket, request: dict[str, Any] | None) -> None:
        self.sock = sock
        self.request = request  # None for a spare, until its start frame arrives
        self.limit_mb: float | None = None
        self.hb_s: float | None = None
        self.protocol: FrameProtocol | None = None
        self.closed: asyncio.Future[None] | None = None
        self.assigned: asyncio.Future[dict[str, Any] | None] | None = None
        self.node = Node(name="process")
        self.ref: ActorRef | None = None
        self.early: list[dict[str, Any]] = []  # frames that arrived while init ran

    def configure(self, request: dict[str, Any]) -> None:
        """Take on the request: name, heartbeat, memory limit (``RLIMIT_AS`` as the hard backstop)."""
        self.request = request
        self.node.name = f"process:{request.get('name', '?')}"
        set_title(_role(request))
        self.hb_s = request.get("hb_s")
        self.limit_mb = request.get("max_memory_mb")
        if self.limit_mb is not None:
            cap = _vm_size_bytes() + int(float(self.limit_mb) * 1024 * 1024)
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    # -- wire ---------------------------------------------------------------------------------------
    def on_message(self, message: dict[str, Any]) -> None:
        ref = self.ref
        if self.request is None:  # a spare: its first frame is its request
            if message["t"] == "start" and self.assigned is not None and not self.assigned.done():
                self.assigned.set_result(message)
            return
        if ref is None:
            self.early.append(message)
            return
        kind = message["t"]
        if kind == "call":
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.add_done_callback(functools.partial(self.reply, message["id"]))
            ref._deliver(CALL, message["req"], future)
        elif kind == "cast":
            ref._deliver(CAST, message["msg"], None)
        elif kind == "info":
            ref._deliver(INFO, message["msg"], None)
        elif kind == "stop":
            ref._request_stop(exit_from_json(message["reason"]))

    def reply(self, call_id: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the actor died with the call pending: its exit frame says why
        try:
            self.send({"t": "reply", "id": call_id, "value": future.result()})
        except IsolationError as exc:  # the reply cannot cross the wire: tell the caller, live on
            self.send({"t": "reply", "id": call_id, "error": str(exc)})

    def on_close(self, exc: BaseException | None) -> None:
        """The socket closed: the node is gone (or dropped us). Called again after init if need be."""
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        if self.assigned is not None and not self.assigned.done():
            self.assigned.set_result(None)  # a spare dropped before it was needed
        ref = self.ref
        if ref is not None and ref.alive:
            # The node is gone: stop politely (terminate runs), and soon by force.
            ref._request_stop(Shutdown("node connection closed"))
            asyncio.get_running_loop().call_later(NODE_GONE_GRACE_S, ref.kill)

    def send(self, message: dict[str, Any]) -> None:
        assert self.protocol is not None
        self.protocol.send(message)

    def beat(self) -> None:
        assert self.hb_s is not None
        if self.protocol is not None and self.protocol.transport is not None:
            if self.protocol.transport.is_closing():
                return
            self.send({"t": "hb"})
            asyncio.get_running_loop().call_later(self.hb_s, self.beat)

    # -- actor --------------------------------------------------------------------------------------
    def reason_for(self, reason: ExitReason) -> ExitReason:
        """``MemoryExceeded`` for a crash by ``MemoryError`` under a memory limit, else ``reason``."""
        if (
            isinstance(reason, Crashed)
            and isinstance(reason.error, MemoryError)
            and self.limit_mb is not None
        ):
            return MemoryExceeded(limit_mb=self.limit_mb, used_mb=round(rss_mb(), 1))
        return reason

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        _, protocol = await loop.connect_accepted_socket(
            lambda: FrameProtocol(self.on_message, self.on_close), self.sock
        )
        assert isinstance(protocol, FrameProtocol)
        self.protocol = protocol
        if self.request is None:
            self.assigned = loop.create_future()
            request = await self.assigned
            if request is None:
                return
            self.configure(request)
        else:
            self.configure(self.request)
        assert self.request is not None
        if self.hb_s:  # beat from the start, so an init that blocks the loop is a hung child too
            loop.call_later(self.hb_s, self.beat)
        try:
            cls = resolve(self.request["actor"], self.request.get("main"))
            self.ref = await self.node.spawn(
                cls, *self.request.get("args", ()), name=None, **self.request.get("kwargs", {})
            )
        except BaseException as exc:
            if isinstance(exc, StartFailed) and exc.reason == "ignore":
                self.send({"t": "ignore"})
            else:
                self.send({"t": "exit", "reason": self.reason_for(Crashed(exc)).to_json()})
            await self.close()
            return
        if self.closed.done():  # the node went away while init ran
            self.on_close(None)
        self.send({"t": "ready", "v": WIRE_VERSION, "pid": os.getpid(), "stack_fd": _STACK_FD})
        early, self.early = self.early, []
        for message in early:
            self.on_message(message)
        reason = self.reason_for(await self.ref.wait())
        if not self.closed.done():
            self.send({"t": "exit", "reason": reason.to_json()})
        await self.close()

    async def close(self) -> None:
        """Flush what is buffered, close the socket and wait (bounded) until it is closed."""
        assert self.protocol is not None and self.closed is not None
        if self.protocol.transport is not None:
            self.protocol.transport.close()
        await asyncio.wait_for(self.closed, 5.0)


def _role(request: dict[str, Any]) -> str:
    """What ``ps`` calls this child: ``agent ceo`` for an agent, ``process NAME`` for other actors."""
    name = str(request.get("name", "?")).rsplit("/", 1)[-1]
    is_agent = str(request.get("actor", "")).startswith("beamish.agent")
    return f"agent {name}" if is_agent else f"process {name}"


def run_spare(fd: int) -> int:
    """Entry point of a spare: its loop, node and socket transport are made now, before it is needed.

    The node holds the other end of the socket already; a restart sends the request as the first
    frame to a process that is forked, connected and idle in its loop: no zygote round trip, no
    ``fork()``, nothing left to build but the actor itself.
    """
    set_title("spare")
    return run_child(fd, None)


#: A memfd that SIGUSR1 makes ``faulthandler`` fill with every thread's stack, even while the loop is
#: blocked: the node reads it through ``/proc/PID/fd`` before it kills a hung child.
_STACK_FD = -1


def run_child(fd: int, request: dict[str, Any] | None) -> int:
    """Entry point in a forked child (``request`` None for a spare); returns the exit code."""
    global _STACK_FD
    _STACK_FD = os.memfd_create("beamish-stacks")
    faulthandler.register(signal.SIGUSR1, file=_STACK_FD, all_threads=True)
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ChildHost(sock, request).main())
    except TimeoutError:
        return 1
    finally:
        loop.close()
    return 0


class _WarmUp(Actor):
    """The actor of the zygote's rehearsal (see :func:`warm_up`)."""

    async def handle_call(self, request: Any) -> Any:
        return request

    async def handle_cast(self, message: Any) -> None:
        pass


def warm_up() -> None:
    """Rehearse one whole child session inside the zygote, before it forks anything.

    Everything a child creates lazily on first use (the event-loop policy, codec and method caches,
    interned strings, the wire's encoder) is then created once in the template instead of in every
    child: restarts get faster and each child dirties — so privately copies — fewer pages.
    """
    node_end, child_end = socket.socketpair()
    child_end.setblocking(False)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_rehearse(node_end, child_end))
    finally:
        loop.close()
        node_end.close()


async def _rehearse(node_end: socket.socket, child_end: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    request = {"actor": f"{__name__}:_WarmUp", "args": [], "kwargs": {}, "name": "warm-up", "hb_s": 3600}
    session = loop.create_task(ChildHost(child_end, None).main())  # as a spare, the usual way
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    _, protocol = await loop.connect_accepted_socket(
        lambda: FrameProtocol(inbox.put_nowait, lambda exc: None), node_end
    )
    assert isinstance(protocol, FrameProtocol)
    protocol.send({**request, "t": "start"})
    assert (await inbox.get())["t"] == "ready"
    protocol.send({"t": "call", "id": 1, "req": {"warm": [1, 2.5, "up", None, True]}})
    assert (await inbox.get())["t"] == "reply"
    protocol.send({"t": "cast", "msg": "warm"})
    protocol.send({"t": "info", "msg": "warm"})
    protocol.send({"t": "stop", "reason": Shutdown().to_json()})
    exit_reason = exit_from_json((await inbox.get())["reason"])
    assert isinstance(exit_reason, Shutdown), exit_reason
    await session
    if protocol.transport is not None:
        protocol.transport.close()
