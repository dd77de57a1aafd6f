"""The node's loop watchdog reports a blocked event loop with the actor and the stack."""

from __future__ import annotations

import asyncio
import time

import pytest

from beamish import Actor, Node
from beamish._events import Event
from beamish.runtime._loopwatch import LoopWatchdog, watch_loop


class Sleeper:
    """Stands in for an actor: the watchdog finds the innermost ``self`` of the given type."""

    name = "sleepy"

    async def handle_call(self, request: float) -> None:
        time.sleep(request)  # the bug the watchdog exists to catch


@pytest.mark.timeout(10)
async def test_a_callback_blocking_the_loop_is_reported_with_the_actor_and_its_stack() -> None:
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[Event] = loop.create_future()
    watchdog = LoopWatchdog(
        loop, lambda e: seen.done() or seen.set_result(e), threshold_s=0.05, actor_type=Sleeper
    )
    watchdog.start()
    try:
        await Sleeper().handle_call(0.3)
        event = await asyncio.wait_for(seen, 5)
    finally:
        watchdog.stop()
    assert event.kind == "node.loop_blocked"
    assert event.data["actor"] == "sleepy"
    assert event.data["blocked_for_s"] > 0.05
    assert "time.sleep(request)" in event.data["stack"]
    assert watchdog.reports == 1


@pytest.mark.timeout(10)
async def test_a_loop_that_keeps_turning_is_never_reported() -> None:
    loop = asyncio.get_running_loop()
    events: list[Event] = []
    watchdog = LoopWatchdog(loop, events.append, threshold_s=0.2)
    watchdog.start()
    try:
        ticks = 0
        deadline = loop.time() + 0.5
        while loop.time() < deadline:  # busy on the loop, but yielding: not blocked
            await asyncio.sleep(0.01)
            ticks += 1
    finally:
        watchdog.stop()
    assert events == [] and watchdog.reports == 0 and ticks > 10


@pytest.mark.timeout(10)
async def test_an_idle_loop_is_not_woken_by_its_watchdog_and_stays_responsive() -> None:
    """An idle node costs no CPU for being watched: the thread sees the loop waiting in its
    selector and asks it for nothing."""
    loop = asyncio.get_running_loop()
    events: list[Event] = []
    watchdog = LoopWatchdog(loop, events.append, threshold_s=0.02)
    asked: list[float] = []
    tick = watchdog._tick
    watchdog._tick = lambda: (asked.append(time.monotonic()), tick())  # type: ignore[method-assign]
    watchdog.start()
    try:
        await asyncio.sleep(0.3)  # idle: about 30 checks
        assert watchdog.responsive()
    finally:
        watchdog.stop()
    assert asked == [] and events == []


def test_a_threshold_that_is_not_positive_is_refused() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="threshold_s"):
            LoopWatchdog(loop, print, threshold_s=0)
    finally:
        loop.close()


class Blocker(Actor):
    async def handle_call(self, request: float) -> str:
        time.sleep(request)  # blocks every actor of the node
        return "done"


@pytest.mark.timeout(10)
async def test_a_node_reports_the_actor_that_blocked_its_loop_as_an_event() -> None:
    async with Node() as node, node.events() as events:
        watchdog = watch_loop(node, threshold_s=0.05)
        try:
            ref = await node.spawn(Blocker, name="blocker")
            assert await ref.call(0.3) == "done"
            event = await asyncio.wait_for(events.next("node.loop_blocked"), 5)
        finally:
            watchdog.stop()
    assert event.subject == node.name
    assert event.data["actor"] == "blocker"
    assert "in handle_call" in event.data["stack"]


def test_the_watchdog_thread_ends_by_itself_when_its_loop_closes() -> None:
    loop = asyncio.new_event_loop()
    watchdog = LoopWatchdog(loop, print, threshold_s=0.02)
    loop.run_until_complete(asyncio.sleep(0))
    loop.call_soon(watchdog.start)
    loop.run_until_complete(asyncio.sleep(0.01))
    thread = watchdog._thread
    assert thread is not None and thread.is_alive()
    loop.close()
    thread.join(timeout=2)
    assert not thread.is_alive() and watchdog.reports == 0
