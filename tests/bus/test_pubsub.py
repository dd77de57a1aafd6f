"""In-node topics: fan-out, patterns, bounded buffers that drop the oldest, handlers, unsubscribe."""

from __future__ import annotations

import asyncio

import pytest

from beamish import SpecError
from beamish.bus import PubSub

pytestmark = pytest.mark.timeout(5)


async def test_every_subscriber_of_a_topic_gets_each_message_in_order() -> None:
    bus = PubSub()
    a, b = bus.subscribe("run.finished"), bus.subscribe("run.finished")
    assert bus.publish("run.finished", 1) == 2
    assert bus.publish("run.finished", 2) == 2
    assert [await a.get(), await a.get()] == [("run.finished", 1), ("run.finished", 2)]
    assert [await b.get(), await b.get()] == [("run.finished", 1), ("run.finished", 2)]


async def test_a_message_on_another_topic_is_not_delivered() -> None:
    bus = PubSub()
    sub = bus.subscribe("schedule.fired")
    assert bus.publish("schedule.missed", "x") == 0
    assert sub.get_nowait() is None


async def test_prefix_patterns_and_star_receive_matching_topics() -> None:
    bus = PubSub()
    schedules, everything = bus.subscribe("schedule.*"), bus.subscribe("*")
    bus.publish("schedule.fired", 1)
    bus.publish("run.started", 2)
    assert schedules.get_nowait() == ("schedule.fired", 1)
    assert schedules.get_nowait() is None
    assert [everything.get_nowait(), everything.get_nowait()] == [("schedule.fired", 1), ("run.started", 2)]


async def test_a_waiting_reader_is_woken_by_publish() -> None:
    bus = PubSub()
    sub = bus.subscribe("t")
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish("t", "hello")
    assert await asyncio.wait_for(reader, 1) == ("t", "hello")


async def test_a_slow_subscriber_loses_its_oldest_messages_and_counts_them() -> None:
    bus = PubSub()
    sub = bus.subscribe("t", buffer=3)
    for i in range(10):
        bus.publish("t", i)
    assert sub.dropped == 7
    assert [sub.get_nowait(), sub.get_nowait(), sub.get_nowait()] == [("t", 7), ("t", 8), ("t", 9)]


async def test_handlers_are_called_inline_and_a_failing_handler_is_unsubscribed() -> None:
    bus = PubSub()
    seen: list[object] = []
    bus.subscribe("t", handler=lambda topic, msg: seen.append(msg))

    def broken(topic: str, msg: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe("t", handler=broken)
    assert bus.publish("t", 1) == 1
    assert bus.subscribers("t") == 1
    bus.publish("t", 2)
    assert seen == [1, 2]


async def test_closing_a_subscription_stops_delivery_and_ends_iteration_after_draining() -> None:
    bus = PubSub()
    with bus.subscribe("t") as sub:
        bus.publish("t", 1)
    assert bus.subscribers("t") == 0
    assert bus.publish("t", 2) == 0
    assert [m async for m in sub] == [("t", 1)]


async def test_get_times_out_when_nothing_arrives() -> None:
    sub = PubSub().subscribe("t")
    with pytest.raises(TimeoutError):
        await sub.get(timeout=0.01)


@pytest.mark.parametrize("pattern", ["", "a*", "a.*.b", "**", "a.**"])
async def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(SpecError, match="pattern"):
        PubSub().subscribe(pattern)


@pytest.mark.parametrize("topic", ["", "*", "a.*"])
async def test_publishing_to_a_pattern_is_refused(topic: str) -> None:
    with pytest.raises(SpecError, match="topic"):
        PubSub().publish(topic, 1)
