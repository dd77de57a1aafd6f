"""The per-run watchdog on a fake clock: hangs, extensions, step and wall-clock caps."""

from __future__ import annotations

import asyncio

import pytest

from beamish import Hung, Looping, SpecError
from beamish.agent._watchdog import RunWatch, Verdict, Watchdog
from beamish.testing import FakeClock, settle

pytestmark = pytest.mark.timeout(10)


async def test_silence_past_hang_after_is_detected_at_the_deadline() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=120), clock)
    seen: list[Verdict] = []
    task = asyncio.create_task(watch.watch(seen.append))
    await clock.jump(119.9)
    assert seen == []
    await clock.jump(0.2)
    verdict = await asyncio.wait_for(task, 1)
    assert seen == [verdict]
    assert verdict is not None and verdict.kind == "hung" and verdict.process_level
    assert isinstance(verdict.reason, Hung)
    assert verdict.reason.silent_for_s == pytest.approx(120.1)
    assert verdict.event("run-1", 0.0).kind == "watchdog.hung"


async def test_every_step_and_chunk_is_progress() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=10), clock)
    seen: list[Verdict] = []
    task = asyncio.create_task(watch.watch(seen.append))
    for _ in range(5):
        await clock.jump(8)
        watch.step()
    for _ in range(5):
        await clock.jump(8)
        watch.chunk()
    assert seen == [] and not task.done()
    await clock.jump(10)
    await asyncio.wait_for(task, 1)
    assert seen[0].evidence["last_progress"] == "chunk"
    assert watch.chunks == 5


async def test_a_tool_that_extends_is_not_hung_until_its_extension_ends() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=10), clock)
    watch.extend(300)
    clock.advance(299)
    assert watch.check() is None
    clock.advance(2)
    verdict = watch.check()
    assert verdict is not None and verdict.kind == "hung"


async def test_an_extension_ends_with_the_next_step() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=10), clock)
    watch.extend(300)
    clock.advance(50)
    watch.step()
    clock.advance(11)
    assert watch.check() is not None


def test_step_cap_is_a_run_level_looping_verdict() -> None:
    watch = RunWatch(Watchdog(max_steps=3), FakeClock())
    assert [watch.step() for _ in range(3)] == [None, None, None]
    verdict = watch.step()
    assert verdict is not None and verdict.kind == "max_steps" and not verdict.process_level
    assert verdict.reason == Looping(pattern="max_steps", detail="run took more than 3 steps", from_step=4)
    assert verdict.event("run-1", 0.0).kind == "watchdog.cap_reached"


async def test_wall_clock_cap_fires_even_while_progress_is_made() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=10, max_wall_s=25, max_steps=None), clock)
    seen: list[Verdict] = []
    task = asyncio.create_task(watch.watch(seen.append))
    for _ in range(5):
        await clock.jump(5)
        watch.step()
    await asyncio.wait_for(task, 1)
    assert seen[0].kind == "max_wall_s"
    assert isinstance(seen[0].reason, Looping)


async def test_a_stopped_watch_says_nothing() -> None:
    clock = FakeClock()
    watch = RunWatch(Watchdog(hang_after_s=10), clock)
    task = asyncio.create_task(watch.watch(lambda v: None))
    await settle()
    watch.stop()
    await clock.jump(20)
    assert await asyncio.wait_for(task, 1) is None


async def test_no_limits_means_no_watcher() -> None:
    watch = RunWatch(Watchdog(hang_after_s=None, max_steps=None), FakeClock())
    assert await asyncio.wait_for(watch.watch(lambda v: None), 1) is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"hang_after_s": 0}, "hang_after_s"),
        ({"hang_after_s": -5}, "hang_after_s"),
        ({"max_wall_s": float("inf")}, "max_wall_s"),
        ({"first_chunk_s": "10"}, "first_chunk_s"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 2.5}, "max_steps"),
    ],
)
def test_a_bad_watchdog_is_refused_naming_the_key(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(SpecError, match=named):
        Watchdog(**kwargs)  # type: ignore[arg-type]


def test_watchdog_from_config_names_an_unknown_key() -> None:
    with pytest.raises(SpecError, match="hang_s"):
        Watchdog.from_mapping({"hang_s": 3})


def test_extend_refuses_nonsense() -> None:
    with pytest.raises(SpecError, match="extend"):
        RunWatch(Watchdog(), FakeClock()).extend(float("nan"))


def test_watchdog_round_trips_through_json() -> None:
    spec = Watchdog(hang_after_s=30, max_steps=7, max_wall_s=600)
    assert Watchdog.from_mapping(spec.to_json()) == spec


def test_a_watchdog_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(SpecError, match="version 2"):
        Watchdog.from_mapping({**Watchdog().to_json(), "v": 2})
