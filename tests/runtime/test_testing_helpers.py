"""beamish.testing: waits that never sleep, and the fake clock's timers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from beamish import ChildSpec, Node, Shutdown, SupervisorSpec
from beamish.testing import EventLog, FakeClock, wait_for_child, wait_for_restart

from ._actors import Worker

pytestmark = pytest.mark.timeout(20)


async def test_wait_for_child_fails_at_once_when_the_supervisor_exits(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([ChildSpec("a", Worker, restart="transient")]))
    old = (await sup.which_children())[0].ref
    assert old is not None
    waiting = asyncio.ensure_future(wait_for_restart(sup, "a", old, timeout=5.0))
    await asyncio.sleep(0)
    await sup.stop(Shutdown())
    with pytest.raises(AssertionError, match="exited"):
        await waiting


async def test_wait_for_child_times_out_with_a_clear_message(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([]))
    with pytest.raises(TimeoutError, match="child 'ghost'"):
        await wait_for_child(sup, "ghost", timeout=0.05)


async def test_wait_for_child_returns_a_child_started_later(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([]))
    waiting = asyncio.ensure_future(wait_for_child(sup, "late"))
    await asyncio.sleep(0)
    ref = await sup.start_child(ChildSpec("late", Worker))
    assert await waiting is ref


async def test_event_log_waits_for_the_nth_event_and_times_out_clearly(node: Node, events: EventLog) -> None:
    sup = await node.start_supervisor(SupervisorSpec([ChildSpec(t, Worker) for t in "ab"]))
    second = await events.wait_for("child.started", count=2)
    assert second.subject == "root/b"
    assert [e.subject for e in events.of("child.started")] == ["root/a", "root/b"]
    with pytest.raises(TimeoutError, match=r"child\.restarted"):
        await events.wait_for("child.restarted", timeout=0.05)
    events.close()
    await sup.stop(Shutdown())


async def test_fake_clock_call_later_fires_on_jump_and_can_be_cancelled() -> None:
    clock = FakeClock()
    fired: list[str] = []
    clock.call_later(2.0, fired.append, "two")
    cancelled = clock.call_later(1.0, fired.append, "one")
    cancelled.cancel()
    await clock.jump(1.5)
    assert fired == []
    await clock.jump(0.5)
    assert fired == ["two"]


def test_the_supervised_tree_example_survives_its_crashes() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "supervised_tree.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "flaky    worker     restarts=3 running=True" in done.stdout
    assert "stopped cleanly: Shutdown" in done.stdout
