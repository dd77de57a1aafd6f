"""A watchdog thread for the node's own event loop: who blocked it, and where.

Every actor of a node shares one asyncio loop, so one callback that calls ``time.sleep`` or spins on
the CPU stalls them all — heartbeats, timeouts and supervisors included. The loop cannot see that
about itself, so a thread watches: every ``interval_s`` (half the threshold) it looks at the loop's
thread: one waiting in its selector is idle, not blocked; one running callbacks is asked to run one
more (a tick that stamps the time). When the thread finds the stamp older than ``threshold_s`` it
takes the loop thread's stack at that moment (``sys._current_frames``), finds the actor whose
callback is on it, and reports a ``node.loop_blocked`` :class:`~beamish._events.Event` with the
actor's name, how long the loop had been blocked and the stack. The event is handed to the loop with
``call_soon_threadsafe`` (so consumers need no locks) and is delivered as soon as the loop runs
again; a one-line warning naming the innermost frame is logged from the thread at once (the stack at
DEBUG), so a loop that never comes back is still visible. One report per stall.

The same check drives liveness for whoever supervises the node from outside: each ``heartbeats``
callback (systemd's ``WATCHDOG=1``) runs from the thread whenever it finds the loop responsive, so a
loop that stalls stops the heartbeat and the service manager restarts the node; ``responsive()``
answers ``/healthz``.

Cost: a thread that sleeps between checks and holds the GIL for the check itself; an idle loop is
never woken for it (a timer tick on the loop would wake an idle node several times a second), a
busy one runs one tick callback per check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from beamish._events import Event
from beamish.runtime._actor import Actor

if TYPE_CHECKING:
    from beamish.runtime._node import Node

log = logging.getLogger("beamish.runtime")


def actor_on_stack(frame: FrameType | None, actor_type: type | None) -> str | None:
    """The name of the innermost actor whose method is on the stack (``self`` an ``actor_type``)."""
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if candidate is not None and (
            (actor_type is not None and isinstance(candidate, actor_type))
            or (actor_type is None and hasattr(candidate, "handle_call"))
        ):
            return _name_of(candidate)
        frame = frame.f_back
    return None


def _name_of(actor: Any) -> str:
    for attr in ("name", "ref"):
        value = getattr(actor, attr, None)
        if isinstance(value, str):
            return value
        name = getattr(value, "name", None)
        if isinstance(name, str):
            return name
    return type(actor).__qualname__


class LoopWatchdog:
    """Watches ``loop`` from a daemon thread; reports stalls longer than ``threshold_s`` to ``emit``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[Event], None],
        *,
        threshold_s: float = 0.25,
        subject: str = "node",
        actor_type: type | None = None,
    ) -> None:
        if threshold_s <= 0:
            raise ValueError(f"threshold_s must be > 0, got {threshold_s!r}")
        self.loop = loop
        self.emit = emit
        self.threshold_s = threshold_s
        self.interval_s = threshold_s / 2
        self.subject = subject
        self.actor_type = actor_type
        self.reports = 0
        #: Called from the watchdog thread at each check that finds the loop responsive.
        self.heartbeats: list[Callable[[], None]] = []
        self._last_tick = time.monotonic()
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: A tick was asked of the loop and has not run yet.
        self._asked = False

    def start(self) -> None:
        """Start watching; call from the loop's own thread."""
        if self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        self._last_tick = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="beamish-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None

    def _tick(self) -> None:
        """On the loop: it ran a callback the watch asked for, so it was not blocked."""
        self._last_tick = time.monotonic()
        self._asked = False

    def _watch(self) -> None:
        reported_for: float | None = None
        while not self._stop.wait(self.interval_s):
            if self.loop.is_closed():
                return
            if not self.loop.is_running() or self._selecting():
                # stopped between run_until_complete calls, or waiting for I/O or a timer: not
                # blocked, and nothing to wake the loop for
                self._last_tick = time.monotonic()
                self._beat()
                continue
            if not self._asked:  # running callbacks: ask it to run one more, which stamps the tick
                self._asked = True
                try:
                    self.loop.call_soon_threadsafe(self._tick)
                except RuntimeError:  # it closed meanwhile
                    return
            last = self._last_tick
            blocked_for = time.monotonic() - last
            if blocked_for <= self.threshold_s:
                self._beat()
                continue
            if reported_for == last:
                continue
            reported_for = last
            self._report(blocked_for)

    def _selecting(self) -> bool:
        """Whether the loop's thread is waiting in its selector (between callbacks) right now."""
        assert self._loop_thread is not None
        frame = sys._current_frames().get(self._loop_thread)
        try:
            return (
                frame is not None
                and frame.f_code.co_name == "select"
                and frame.f_back is not None
                and frame.f_back.f_code.co_name == "_run_once"
            )
        finally:
            del frame

    def responsive(self) -> bool:
        """Whether the loop ticked within the threshold (the liveness a probe asks about)."""
        return time.monotonic() - self._last_tick <= self.threshold_s

    def _beat(self) -> None:
        for beat in list(self.heartbeats):
            try:
                beat()
            except Exception:  # a heartbeat's failure must not end the watch
                log.debug("loop heartbeat failed", exc_info=True)

    def _report(self, blocked_for: float) -> None:
        assert self._loop_thread is not None
        frame = sys._current_frames().get(self._loop_thread)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        actor = actor_on_stack(frame, self.actor_type)
        del frame
        event = Event(
            "node.loop_blocked",
            self.subject,
            {
                "actor": actor,
                "blocked_for_s": math.ceil(blocked_for * 1000) / 1000,  # at least this long
                "threshold_s": self.threshold_s,
                "stack": stack,
            },
        )
        self.reports += 1
        # One line where the user sees it (a CLI's stderr); the whole stack is in the event and at
        # DEBUG. The innermost frame says where a loop that never comes back is stuck.
        log.warning(
            "the event loop of %s has been blocked for %.3fs by %s%s",
            self.subject,
            blocked_for,
            actor or "code outside any actor",
            f", at {_innermost(stack)}" if stack else "",
        )
        log.debug("stack of the loop blocked for %.3fs:\n%s", blocked_for, stack)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(self.emit, event)


def _innermost(stack: str) -> str:
    """``File "x.py", line 3, in f`` of a formatted stack's last frame, stripped."""
    frames = [line.strip() for line in stack.splitlines() if line.lstrip().startswith('File "')]
    return frames[-1] if frames else "an unknown place"


def watch_loop(node: Node, threshold_s: float = 0.25) -> LoopWatchdog:
    """Watch ``node``'s event loop: stalls over ``threshold_s`` become ``node.loop_blocked`` events.

    An entered node already runs one (``Node(loop_watch_s=...)``); this is for a node made with
    ``loop_watch_s=None`` that wants a watchdog of another lifetime. Call from inside the node's
    loop. The thread ends by itself when the loop closes; ``stop()`` ends it sooner.
    """
    watchdog = LoopWatchdog(
        asyncio.get_running_loop(), node.emit, threshold_s=threshold_s, subject=node.name, actor_type=Actor
    )
    watchdog.start()
    return watchdog
