"""Supervisor start and stop (supervisor_SUITE: sup_start*, sup_stop*, child_unlink, ignore)."""

from __future__ import annotations

import asyncio

import pytest

from beamish import (
    ActorExited,
    ChildSpec,
    Crashed,
    Killed,
    Node,
    Shutdown,
    SpecError,
    StartFailed,
    SupervisorSpec,
)
from beamish.testing import EventLog, FakeClock, settle, wait_for_restart

from ._actors import Journal, Stubborn, Worker

pytestmark = pytest.mark.timeout(10)


def worker(tag: str, journal: Journal, **spec: object) -> ChildSpec:
    return ChildSpec(tag, Worker, args=(tag, journal), **spec)  # type: ignore[arg-type]


async def test_children_start_in_list_order(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker("a", journal), worker("b", journal), worker("c", journal)])
    sup = await node.start_supervisor(spec)
    assert journal.tags("init") == ["a", "b", "c"]
    assert [c.id for c in await sup.which_children()] == ["a", "b", "c"]
    assert all(c.ref is not None and c.ref.alive for c in await sup.which_children())


async def test_a_supervisor_with_no_children_starts(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([]))
    assert await sup.which_children() == []
    assert node.whereis("root") is sup


async def test_a_child_failing_to_start_stops_the_started_ones_in_reverse_and_fails(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [
            worker("a", journal),
            worker("b", journal),
            ChildSpec("bad", Worker, args=("bad", journal, "broken")),
            worker("d", journal),
        ]
    )
    with pytest.raises(StartFailed) as info:
        await node.start_supervisor(spec)
    assert info.value.child_id == "bad"
    assert isinstance(info.value.reason, Crashed)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert journal.tags("init") == ["a", "b"]
    assert journal.tags("terminate") == ["b", "a"]
    assert node.whereis("root") is None


async def test_a_child_returning_ignore_is_kept_as_a_spec_without_a_ref(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker("a", journal), ChildSpec("shy", Worker, args=("shy", journal, "ignore"))])
    sup = await node.start_supervisor(spec)
    children = await sup.which_children()
    assert [(c.id, c.ref is None) for c in children] == [("a", False), ("shy", True)]
    counts = await sup.count_children()
    assert (counts.specs, counts.active) == (2, 1)


async def test_a_temporary_child_returning_ignore_is_dropped(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([ChildSpec("shy", Worker, args=("shy", journal, "ignore"), restart="temporary")])
    sup = await node.start_supervisor(spec)
    assert await sup.which_children() == []


async def test_stop_shuts_children_down_in_reverse_order(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker("a", journal), worker("b", journal), worker("c", journal)])
    sup = await node.start_supervisor(spec)
    assert await sup.stop(Shutdown()) == Shutdown()
    assert journal.tags("terminate") == ["c", "b", "a"]
    assert {e[2] for e in journal.of("terminate")} == {Shutdown()}


async def test_brutal_kill_kills_without_terminate(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal, shutdown="brutal_kill")]))
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    await sup.stop(Shutdown())
    assert ref.reason == Killed()
    assert journal.of("terminate") == []


async def test_a_child_ignoring_the_shutdown_request_is_killed_after_its_timeout(
    node: Node, clock: FakeClock
) -> None:
    journal = Journal()
    spec = SupervisorSpec([ChildSpec("stubborn", Stubborn, args=("s", journal), shutdown=3.0)])
    sup = await node.start_supervisor(spec)
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    stopping = asyncio.ensure_future(sup.stop(Shutdown(), timeout=None))
    await settle()
    await clock.jump(2.9)
    assert ref.alive and not stopping.done()
    await clock.jump(0.1)
    assert await stopping == Shutdown()
    assert ref.reason == Killed()
    assert journal.tags("terminate") == ["s"]


async def test_shutdown_infinity_waits_for_the_child_however_long(node: Node, clock: FakeClock) -> None:
    journal = Journal()
    release: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Slow(Worker):
        async def terminate(self, reason: object) -> None:
            await release
            self.journal.add("terminate", self.tag, reason)

    sup = await node.start_supervisor(
        SupervisorSpec([ChildSpec("slow", Slow, args=("s", journal), shutdown="infinity")])
    )
    stopping = asyncio.ensure_future(sup.stop(Shutdown(), timeout=None))
    await clock.jump(10_000)
    assert not stopping.done()
    release.set_result(None)
    assert await stopping == Shutdown()
    assert journal.tags("terminate") == ["s"]


async def test_a_permanent_child_is_restarted_after_a_kill(node: Node, events: EventLog) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)], intensity=5))
    old = (await sup.which_children())[0].ref
    assert old is not None
    old.kill()
    new = await wait_for_restart(sup, "a", old)
    assert new is not old and new.alive
    assert journal.tags("init") == ["a", "a"]
    assert (await sup.which_children())[0].restarts == 1
    restarted = await events.wait_for("child.restarted", "root/a")
    assert restarted.data["restarts"] == 1
    exited = events.of("child.exited", "root/a")[0]
    assert exited.data["reason"]["kind"] == "killed"


async def test_a_process_child_without_a_registered_starter_is_a_spec_error(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Node, "_class_isolation", {})
    spec = SupervisorSpec([ChildSpec("p", Worker, isolation="process")])
    with pytest.raises(SpecError, match="no starter"):
        await node.start_supervisor(spec)


async def test_a_child_being_stopped_is_killed_if_its_supervisor_dies_meanwhile(
    node: Node, clock: FakeClock
) -> None:
    journal = Journal()
    spec = SupervisorSpec([ChildSpec("stubborn", Stubborn, args=("s", journal), shutdown=60.0)])
    sup = await node.start_supervisor(spec)
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    stopping = asyncio.ensure_future(sup.terminate_child("stubborn"))
    await settle()
    assert ref.alive
    sup.kill()
    assert await ref.wait() == Killed()
    with pytest.raises(ActorExited):
        await stopping


async def test_simple_one_for_one_stops_its_children_in_parallel_killing_the_slow_after_the_timeout(
    node: Node, clock: FakeClock
) -> None:
    journal = Journal()

    class Mixed(Worker):
        async def terminate(self, reason: object) -> None:
            self.journal.add("terminate", self.tag, reason)
            if self.tag == "slow":
                await asyncio.Future()

    template = ChildSpec("w", Mixed, kwargs={"journal": journal}, shutdown=2.0)
    sup = await node.start_supervisor(SupervisorSpec([template], strategy="simple_one_for_one"))
    refs = [await sup.start_child([tag]) for tag in ("a", "slow", "b", "c")]
    stopping = asyncio.ensure_future(sup.stop(Shutdown(), timeout=None))
    await settle()
    assert sorted(journal.tags("terminate")) == ["a", "b", "c", "slow"]
    assert not stopping.done()
    await clock.jump(2.0)  # one timeout for all of them, not one per child
    assert await stopping == Shutdown()
    assert [ref.name for ref in refs if ref is not None] == ["root/w.1", "root/w.2", "root/w.3", "root/w.4"]
    reasons = [type(ref.reason).__name__ for ref in refs if ref is not None]
    assert reasons == ["Shutdown", "Killed", "Shutdown", "Shutdown"]
