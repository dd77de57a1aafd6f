"""The proxy actor: how a supervisor sees a child that lives in another OS process.

The proxy is an ordinary :class:`~beamish.Actor` in the node. Its ``init`` gets a child from the
node's zygote (the spare forked ahead, or a fresh fork) and waits for the child's ``ready``;
``handle_call``/``handle_cast``/``handle_info`` forward to the child over the wire; ``terminate``
asks the child to stop and waits for it to go (the supervisor's shutdown timeout bounds the wait,
and a kill of the proxy SIGKILLs the child in ``on_exit``). When the child's socket closes, the
proxy ends at once with the child's reason — ``exit`` frame if it sent one, otherwise ``Killed`` for
SIGKILL or ``Crashed`` naming the signal or exit code (read from ``/proc`` while the process is
still exiting, else asked of the zygote) — so pending calls fail immediately with ``ActorExited``
and the supervisor restarts it.

The node also polices the child from here: no heartbeat for ``hang_after_s`` means SIGUSR1 (the
child's ``faulthandler`` dumps its stacks, emitted as a ``watchdog.hung`` event), then SIGKILL and
exit ``Hung``; RSS over ``max_memory_mb`` (polled from ``/proc``) means SIGKILL and
``MemoryExceeded``. Signals go through a pidfd, so a reused pid can never be hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beamish._events import Event
from beamish._exceptions import IsolationError
from beamish._exits import Crashed, ExitReason, Hung, Killed, MemoryExceeded, exit_from_json
from beamish.runtime._actor import Actor, Ignore
from beamish.runtime._procfs import rss_mb
from beamish.runtime._ref import ActorRef
from beamish.runtime._wire import FrameProtocol

if TYPE_CHECKING:
    from beamish.runtime._zygote_client import ZygoteClient

logger = logging.getLogger("beamish.runtime")

#: How often the node reads a child's RSS when it has a memory limit.
MEMORY_POLL_S = 0.05
#: How long a hung child has to dump its stacks (SIGUSR1, faulthandler) before it is killed.
STACK_GRACE_S = 0.05


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ProcessRef(ActorRef):
    """The ref of a process child: an :class:`ActorRef` that also knows the child's OS pid."""

    __slots__ = ()

    @property
    def os_pid(self) -> int | None:
        actor = self._actor
        pid = actor.pid if isinstance(actor, ProcessProxy) else 0
        return pid or None


class ProcessProxy(Actor):
    """Stands in the node for an actor running in its own OS process."""

    pid: int = 0
    _pidfd: int = -1
    _on_gone: Callable[[], None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _protocol: FrameProtocol | None = None
    _classifying: asyncio.Task[None] | None = None
    _stack_fd: int = -1

    async def init(
        self,
        client: ZygoteClient,
        request: dict[str, Any],
        hang_after_s: float | None = None,
        max_memory_mb: float | None = None,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self._on_gone = on_gone
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._client = client
        self._hang_after_s = hang_after_s
        self._max_memory_mb = max_memory_mb
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._said: ExitReason | None = None  # the reason in the child's exit frame
        self._forced: ExitReason | None = None  # Hung / MemoryExceeded, decided here
        self._stopping = False
        self._closed: asyncio.Future[None] = loop.create_future()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._protocol: FrameProtocol | None = None
        self._last_beat = time.monotonic()
        self.pid, sock = await client.spawn(request)
        stat = _proc_stat(self.pid)
        self._starttime = stat[0] if stat is not None else -1
        # A pidfd, not the pid, is what we signal: a pid can be reused once the zygote reaps it.
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._pidfd = -1
        try:
            _, protocol = await loop.connect_accepted_socket(
                lambda: FrameProtocol(self._on_message, self._on_close), sock
            )
        except BaseException:
            sock.close()
            self._kill()
            self._release()
            raise
        assert isinstance(protocol, FrameProtocol)
        self._protocol = protocol
        if hang_after_s is not None or max_memory_mb is not None:
            self._schedule_check()
        try:
            await self._ready
        except BaseException:
            self._kill()
            self._release()
            self._cancel_check()
            raise

    # -- forwarding ---------------------------------------------------------------------------------
    async def handle_call(self, request: Any) -> Any:
        call_id = next(self._ids)
        try:
            self._send({"t": "call", "id": call_id, "req": request})
        except IsolationError as exc:
            self._fail_caller(exc)  # the caller's mistake: the child lives on
            return None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._replies[call_id] = future
        try:
            return await future
        except IsolationError as exc:
            self._fail_caller(exc)
            return None
        finally:
            self._replies.pop(call_id, None)

    async def handle_cast(self, message: Any) -> None:
        try:
            self._send({"t": "cast", "msg": message})
        except IsolationError as exc:
            logger.warning("dropped a cast to process child %r: %s", self.ref.name, exc)

    async def handle_info(self, message: Any) -> None:
        try:
            self._send({"t": "info", "msg": message})
        except IsolationError as exc:
            logger.warning("dropped a message to process child %r: %s", self.ref.name, exc)

    async def terminate(self, reason: ExitReason) -> None:
        self._stopping = True
        if not self._closed.done():
            with contextlib.suppress(IsolationError):
                self._send({"t": "stop", "reason": reason.to_json()})
            await self._closed

    def on_exit(self, reason: ExitReason) -> None:
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()
        self._cancel_check()
        self._kill()  # harmless if it is gone already: the pidfd cannot name another process
        self._release()
        if self._classifying is None and self.pid:
            self._client.forget(self.pid)  # nobody will ask the zygote how it ended
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    # -- the wire -----------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        assert self._protocol is not None
        self._protocol.send(message)

    def _fail_caller(self, exc: BaseException) -> None:
        """Fail the pending call's future with ``exc`` (the proxy itself goes on serving)."""
        current = self.ref._current
        if current is not None and not current.done():
            current.set_exception(exc)

    def _on_message(self, message: dict[str, Any]) -> None:
        self._last_beat = time.monotonic()
        kind = message["t"]
        if kind == "reply":
            future = self._replies.get(int(message["id"]))
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(
                        IsolationError(f"the child's reply cannot cross the wire: {message['error']}")
                    )
                else:
                    future.set_result(message.get("value"))
        elif kind == "ready":
            self._stack_fd = int(message.get("stack_fd", -1))
            if not self._ready.done():
                self._ready.set_result(None)
        elif kind == "exit":
            self._said = exit_from_json(message["reason"])
        elif kind == "ignore" and not self._ready.done():
            self._ready.set_exception(Ignore())

    def _on_close(self, exc: BaseException | None) -> None:
        if self._closed.done():
            return
        if isinstance(exc, IsolationError) and self._forced is None:  # it broke the protocol
            self._forced = Crashed(exc)
            self._kill()
        self._closed.set_result(None)
        self._cancel_check()
        reason = self._forced or self._said
        if reason is None:
            status = _exit_status_now(self.pid, self._starttime)
            if status is None:  # not readable any more: the zygote will say
                self._classifying = self._loop.create_task(self._classify_death())
                return
            reason = _reason_from_status(status)
        self._child_gone(reason)

    async def _classify_death(self) -> None:
        """No exit frame, and /proc no longer tells: ask the zygote how the child died."""
        status = await self._client.exit_status(self.pid)
        self._child_gone(self._forced or _reason_from_status(status))

    def _child_gone(self, reason: ExitReason) -> None:
        if not self._ready.done():
            self._ready.set_exception(_start_error(reason))
            return
        if self._ready.exception() is not None or self._stopping:
            return  # terminate() is waiting on _closed; the proxy exits with the reason it was given
        if self.ref.alive:
            self.ref._finish(reason)

    # -- policing -----------------------------------------------------------------------------------
    def _schedule_check(self) -> None:
        interval = MEMORY_POLL_S if self._max_memory_mb is not None else 1.0
        if self._hang_after_s is not None:
            interval = min(interval, self._hang_after_s / 4)
        self._timer = self._loop.call_later(interval, self._check)

    def _cancel_check(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._closed.done() or self._forced is not None:
            return
        silent_for = time.monotonic() - self._last_beat
        if self._hang_after_s is not None and silent_for > self._hang_after_s:
            self._forced = Hung(silent_for_s=round(silent_for, 3))
            self._signal(signal.SIGUSR1)  # the child's faulthandler writes where it is stuck
            self._loop.call_later(STACK_GRACE_S, self._kill_hung, silent_for)
            return
        if self._max_memory_mb is not None:
            try:
                used = rss_mb(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                used = 0.0
            if used > self._max_memory_mb:
                self._forced = MemoryExceeded(limit_mb=self._max_memory_mb, used_mb=round(used, 1))
                self._kill()
                return
        self._schedule_check()

    def _kill_hung(self, silent_for: float) -> None:
        """Read the stacks the child dumped on SIGUSR1, report them, and kill it."""
        stack = ""
        if self._stack_fd >= 0:
            with contextlib.suppress(OSError), open(f"/proc/{self.pid}/fd/{self._stack_fd}", "rb") as f:
                stack = f.read(1 << 20).decode(errors="replace")
        self._kill()
        data = {"pid": self.pid, "silent_for_s": round(silent_for, 3), "stack": stack}
        self.ref.node.emit(Event("watchdog.hung", self.ref.node._subject(self.ref), data))

    def _signal(self, signum: int) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def _kill(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _release(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


def _start_error(reason: ExitReason) -> BaseException:
    """The exception a failed child start raises in the node, carrying the child's traceback."""
    if isinstance(reason, Crashed) and reason.traceback:
        return IsolationError(f"the process child failed in init: {reason.message}\n\n{reason.traceback}")
    return IsolationError(f"the process child exited before it was ready: {reason!r}")


def _reason_from_status(status: dict[str, Any]) -> ExitReason:
    """The exit reason of a child that sent no exit frame, from how its process ended."""
    if status.get("signal") == signal.SIGKILL:
        return Killed()
    if "signal" in status:
        return Crashed(f"ProcessDied: the child process died of {_signal_name(int(status['signal']))}")
    if "code" in status:
        return Crashed(f"ProcessDied: the child process exited with code {status['code']} without a reason")
    return Crashed(f"ProcessDied: {status.get('unknown', 'the child process is gone')}")


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """``(starttime, exit_code)`` from ``/proc/PID/stat``; ``None`` once the process was reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]), int(fields[49]) if len(fields) > 49 else 0


def _exit_status_now(pid: int, starttime: int) -> dict[str, Any] | None:
    """How an exiting child ended, read from /proc before its parent (the zygote) reaps it.

    The kernel publishes the exit code when the process starts exiting, before its socket closes, so
    this spares a round trip to the zygote on every restart. ``starttime`` guards against a reused pid.
    """
    stat = _proc_stat(pid)
    if stat is None or stat[0] != starttime or stat[1] == 0:
        return None
    code = stat[1]
    if code & 0x7F:
        return {"signal": code & 0x7F}
    return {"code": code >> 8}


ProcessProxy._ref_class = ProcessRef
