"""A node watches its own event loop from the moment it is entered, unless told not to."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from beamish import Actor, Node, SpecError
from beamish._events import Event


class Blocker(Actor):
    async def handle_call(self, request: float) -> str:
        time.sleep(request)  # blocks every actor of the node
        return "done"


def _watchdog_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "beamish-loop-watchdog" and t.is_alive())


@pytest.mark.timeout(10)
async def test_a_blocking_callback_in_a_task_actor_is_reported_without_starting_a_watchdog() -> None:
    async with Node(loop_watch_s=0.05) as node, node.events() as events:
        ref = await node.spawn(Blocker, name="blocker")
        assert await ref.call(0.3) == "done"
        event = await asyncio.wait_for(events.next("node.loop_blocked"), 5)
    assert event.subject == node.name
    assert event.data["actor"] == "blocker"
    assert event.data["blocked_for_s"] > 0.05
    assert "time.sleep(request)" in event.data["stack"]


@pytest.mark.timeout(10)
async def test_a_node_watches_its_loop_by_default_and_stops_watching_when_closed() -> None:
    before = _watchdog_threads()
    node = Node()
    assert node.loop_watch_s == 0.25
    async with node:
        assert _watchdog_threads() == before + 1
    assert _watchdog_threads() == before


@pytest.mark.timeout(10)
async def test_a_node_with_loop_watch_disabled_reports_no_stall_and_runs_no_thread() -> None:
    before = _watchdog_threads()
    unwatched: list[Event] = []
    async with Node(loop_watch_s=None, name="unwatched") as quiet:
        quiet.add_event_sink(unwatched.append)
        assert _watchdog_threads() == before
        # A second node on the same loop does watch it: once its report arrives, a watchdog of the
        # first node would have seen the same stall and reported it by now.
        async with Node(loop_watch_s=0.05, name="watched") as watched, watched.events() as events:
            ref = await quiet.spawn(Blocker, name="blocker")
            assert await ref.call(0.3) == "done"
            event = await asyncio.wait_for(events.next("node.loop_blocked"), 5)
            await asyncio.sleep(0)  # let the first node flush whatever it had queued
    assert event.data["actor"] == "blocker"
    assert [e for e in unwatched if e.kind == "node.loop_blocked"] == []


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "0.25", True])
def test_a_loop_watch_threshold_that_is_not_positive_seconds_is_refused(bad: object) -> None:
    with pytest.raises(SpecError, match="loop_watch_s"):
        Node(loop_watch_s=bad)  # type: ignore[arg-type]


@pytest.mark.timeout(10)
async def test_the_logged_warning_is_one_line_naming_the_actor_and_where_it_is_stuck(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="beamish.runtime")
    async with Node(loop_watch_s=0.05) as node, node.events() as events:
        ref = await node.spawn(Blocker, name="blocker")
        assert await ref.call(0.3) == "done"
        await asyncio.wait_for(events.next("node.loop_blocked"), 5)
    warnings = [r.getMessage() for r in caplog.records if "blocked for" in r.getMessage()]
    assert warnings and all("\n" not in message for message in warnings)
    assert "by blocker, at File" in warnings[0] and "in handle_call" in warnings[0]
