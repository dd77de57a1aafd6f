"""The child side of process isolation: one actor, its own asyncio loop, one socket to the node.

Forked from the zygote (:mod:`beamish.runtime._zygote`), the child resolves its actor class by import
path (``"module:qualname"`` — the class must be importable, not defined inside a function or in
``__main__``), runs ``init`` and then serves frames one at a time, exactly as a task actor serves its
mailbox. Frames (see :mod:`beamish.runtime._wire` for the encoding):

* node → child: ``call {id, req}``, ``cast {msg}``, ``info {msg}``, ``stop {reason}``.
* child → node: ``ready {v, pid}`` once ``init`` returned; ``reply {id, value}`` (or ``{id, error}``
  when the reply cannot be encoded); ``hb`` every ``hb_s`` seconds from the loop — a loop that stops
  beating is a hung child; ``exit {reason}`` as the last frame, the reason in its journal JSON
  (a ``Crashed`` carries the formatted remote traceback).

The child ends when its actor ends, when the node asks it to stop, or when its socket reaches EOF
(the node is gone). ``max_memory_mb`` is enforced here with ``RLIMIT_AS`` (a backstop: an allocation
past it raises ``MemoryError``, reported as ``MemoryExceeded``) and in the node by polling RSS.
"""

from __future__ import annotations

import asyncio
import collections
import os
import resource
import socket
from typing import Any

from beamish._exits import Crashed, ExitReason, MemoryExceeded, Normal, Shutdown, exit_from_json
from beamish.runtime._wire import WIRE_VERSION, FrameProtocol
from beamish.runtime._zygote import resolve

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of ``pid`` in MiB, from ``/proc/PID/statm`` (cheap enough to poll)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE / (1024 * 1024)


def _vm_size_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * _PAGE


class _StopHost(BaseException):
    """Unwinds the serving loop with an exit reason."""

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class ChildHost:
    """Runs one actor in this process and speaks frames with the node."""

    def __init__(self, sock: socket.socket, request: dict[str, Any]) -> None:
        self.sock = sock
        self.request = request
        self.limit_mb: float | None = request.get("max_memory_mb")
        self.hb_s: float | None = request.get("hb_s")
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()
        self.wakeup: asyncio.Future[None] | None = None
        self.protocol: FrameProtocol | None = None
        self.closed: asyncio.Future[None] | None = None
        self.stop_reason: ExitReason | None = None
        self.actor: Any = None

    # -- wire ---------------------------------------------------------------------------------------
    def on_message(self, message: dict[str, Any]) -> None:
        if message["t"] == "stop" and self.stop_reason is None:
            self.stop_reason = exit_from_json(message["reason"])
        self.inbox.append(message)
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def on_close(self, exc: BaseException | None) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        # The node is gone: stop as if it had asked, so terminate() still runs.
        self.on_message({"t": "stop", "reason": Shutdown("node connection closed").to_json()})

    def send(self, message: dict[str, Any]) -> None:
        assert self.protocol is not None
        self.protocol.send(message)

    def beat(self) -> None:
        assert self.hb_s is not None
        if self.protocol is not None and self.protocol.transport is not None:
            self.send({"t": "hb"})
            asyncio.get_running_loop().call_later(self.hb_s, self.beat)

    # -- actor --------------------------------------------------------------------------------------
    def exit_reason_for(self, exc: BaseException) -> ExitReason:
        if isinstance(exc, MemoryError) and self.limit_mb is not None:
            return MemoryExceeded(limit_mb=self.limit_mb, used_mb=round(rss_mb(), 1))
        return Crashed(exc)

    async def next_message(self) -> dict[str, Any]:
        while not self.inbox:
            self.wakeup = asyncio.get_running_loop().create_future()
            await self.wakeup
        return self.inbox.popleft()

    async def serve(self) -> ExitReason:
        while True:
            message = await self.next_message()
            kind = message["t"]
            if kind == "stop":
                return self.stop_reason or Shutdown()
            if kind == "call":
                value = await self.actor.handle_call(message["req"])
                try:
                    self.send({"t": "reply", "id": message["id"], "value": value})
                except Exception as exc:  # the reply cannot cross the wire: tell the caller, live on
                    self.send({"t": "reply", "id": message["id"], "error": str(exc)})
            elif kind == "cast":
                await self.actor.handle_cast(message["msg"])
            elif kind == "info":
                await self.actor.handle_info(message["msg"])
            requested = _requested_stop(self.actor)
            if requested is not None:
                return requested

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        _, protocol = await loop.connect_accepted_socket(
            lambda: FrameProtocol(self.on_message, self.on_close), self.sock
        )
        assert isinstance(protocol, FrameProtocol)
        self.protocol = protocol
        reason: ExitReason
        try:
            cls = resolve(self.request["actor"])
            self.actor = cls()
            await self.actor.init(*self.request.get("args", ()), **self.request.get("kwargs", {}))
        except BaseException as exc:
            self.finish(self.exit_reason_for(exc))
            await self.flushed()
            return
        self.send({"t": "ready", "v": WIRE_VERSION, "pid": os.getpid()})
        if self.hb_s:
            loop.call_later(self.hb_s, self.beat)
        try:
            reason = await self.serve()
        except BaseException as exc:
            reason = self.exit_reason_for(exc)
        try:
            await self.actor.terminate(reason)
        except BaseException as exc:
            if isinstance(reason, Normal | Shutdown):
                reason = self.exit_reason_for(exc)
        self.finish(reason)
        await self.flushed()

    def finish(self, reason: ExitReason) -> None:
        assert self.protocol is not None
        self.send({"t": "exit", "reason": reason.to_json()})
        if self.protocol.transport is not None:
            self.protocol.transport.close()  # flushes what is buffered, then closes

    async def flushed(self) -> None:
        assert self.closed is not None
        await asyncio.wait_for(self.closed, 5.0)


def _requested_stop(actor: Any) -> ExitReason | None:
    """The reason an actor gave to ``self.stop(reason)`` during the last callback, if any."""
    reason = getattr(actor, "_beamish_stop_reason", None)
    return reason if isinstance(reason, ExitReason) else None


def run_child(fd: int, request: dict[str, Any]) -> int:
    """Entry point in a freshly forked child; returns the process exit code."""
    limit = request.get("max_memory_mb")
    if limit is not None:
        cap = _vm_size_bytes() + int(float(limit) * 1024 * 1024)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
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
