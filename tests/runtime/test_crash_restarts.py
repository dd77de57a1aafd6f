"""A crash in a callback restarts the child as a kill does; the exiting child's task serves its
supervisor's next mail, and the supervisor goes on serving everything else as before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamish import Actor, ChildSpec, Crashed, Node, Shutdown, SupervisorRef, SupervisorSpec
from beamish.testing import EventLog, wait_for, wait_for_restart

from ._actors import Journal

pytestmark = pytest.mark.timeout(10)


class Fragile(Actor):
    """Crashes on any cast; answers calls. No ``terminate`` of its own (the fastest exit)."""

    async def init(self, tag: str, journal: Journal, gate: asyncio.Event | None = None) -> None:
        journal.add("init", tag)
        if gate is not None:
            await gate.wait()
            journal.add("opened", tag)

    async def handle_cast(self, message: Any) -> None:
        raise RuntimeError(message)

    async def handle_call(self, request: Any) -> Any:
        return request


def fragile(tag: str, journal: Journal, **kwargs: Any) -> ChildSpec:
    return ChildSpec(tag, Fragile, args=(tag, journal), kwargs=kwargs)


async def test_a_child_crashing_in_handle_cast_is_restarted_each_time_and_its_supervisor_serves_on(
    node: Node, events: EventLog
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(
        SupervisorSpec([fragile("a", journal), fragile("b", journal)], intensity=100), name="root"
    )
    for round_ in range(1, 6):
        old = sup._child_ref("a")[1]
        assert old is not None
        old.cast(f"boom {round_}")
        new = await wait_for_restart(sup, "a", old)
        assert old.reason == Crashed(RuntimeError(f"boom {round_}"))
        assert "RuntimeError: boom" in old.reason.traceback  # type: ignore[union-attr]
        assert await new.call("ping") == "ping"
        counts = await sup.count_children()  # the supervisor answers between crashes
        assert (counts.specs, counts.active) == (2, 2)
    assert journal.tags("init") == ["a", "b", "a", "a", "a", "a", "a"]
    await events.wait_for("child.restarted", "root/a", count=5)
    kinds = [e.kind for e in events.events if e.subject == "root/a" and e.kind.startswith("child.")]
    assert kinds == ["child.started"] + ["child.exited", "child.started", "child.restarted"] * 5


async def test_a_crash_while_the_supervisor_is_busy_is_handled_after_its_current_request(
    node: Node,
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([fragile("a", journal)], intensity=10))
    gate = asyncio.Event()
    starting = asyncio.ensure_future(sup.start_child(fragile("slow", journal, gate=gate)))
    await wait_for(lambda: "slow" in journal.tags("init"), what="the slow child's init")
    old = sup._child_ref("a")[1]
    assert old is not None
    old.cast("boom")
    await old.wait()
    assert journal.tags("init") == ["a", "slow"]  # not restarted while the supervisor is busy
    gate.set()
    await starting
    await wait_for_restart(sup, "a", old)
    assert journal.entries[-2:] == [("opened", "slow"), ("init", "a")]


async def test_a_crash_escalating_from_a_nested_supervisor_restarts_it_in_its_parent(node: Node) -> None:
    journal = Journal()
    inner = SupervisorSpec([fragile("w", journal)], intensity=0)
    root = await node.start_supervisor(
        SupervisorSpec([ChildSpec("inner", inner), fragile("x", journal)], intensity=3)
    )
    inner_ref = root._child_ref("inner")[1]
    assert isinstance(inner_ref, SupervisorRef)
    worker = inner_ref._child_ref("w")[1]
    assert worker is not None
    worker.cast("boom")
    assert await inner_ref.wait() == Shutdown("reached_max_restart_intensity")
    new_inner = await wait_for_restart(root, "inner", inner_ref)
    assert isinstance(new_inner, SupervisorRef)
    assert await new_inner.count_children() is not None  # the new one serves calls
    assert journal.tags("init") == ["w", "x", "w"]
    x = root._child_ref("x")[1]
    assert x is not None and await x.call("still here") == "still here"
