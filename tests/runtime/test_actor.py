"""Actors and refs: calls, casts, stops, kills, pending calls failing, names, links and monitors."""

from __future__ import annotations

import asyncio

import pytest

from beamish import (
    Actor,
    ActorExited,
    CallTimeout,
    Crashed,
    Down,
    Exit,
    Ignore,
    Killed,
    Node,
    Normal,
    Shutdown,
    StartFailed,
)
from beamish.errors import ActorError, NameTaken
from beamish.testing import EventLog, FakeClock

from ._actors import Journal, Stubborn, Worker

pytestmark = pytest.mark.timeout(10)


async def test_call_returns_the_reply_of_handle_call(node: Node) -> None:
    ref = await node.spawn(Worker, "a")
    assert await ref.call("hello") == ("a", "hello")
    assert ref.alive


async def test_init_runs_before_spawn_returns(node: Node) -> None:
    journal = Journal()
    await node.spawn(Worker, "a", journal)
    assert journal.tags("init") == ["a"]


async def test_casts_and_infos_are_handled_in_order(node: Node) -> None:
    journal = Journal()
    ref = await node.spawn(Worker, "a", journal)
    ref.cast(1)
    ref.send(2)
    ref.cast(3)
    assert await ref.call("sync") == ("a", "sync")
    assert [e[2] for e in journal.entries if e[0] in ("cast", "info")] == [1, 2, 3]


async def test_a_crashing_call_fails_with_actor_exited_and_the_actor_is_dead(node: Node) -> None:
    journal = Journal()
    ref = await node.spawn(Worker, "a", journal)
    with pytest.raises(ActorExited) as info:
        await ref.call(("crash", "boom"))
    assert info.value.reason == Crashed(RuntimeError("boom"))
    assert not ref.alive
    assert isinstance(ref.reason, Crashed)
    assert journal.of("terminate")[0][2] == Crashed(RuntimeError("boom"))


async def test_the_crash_traceback_is_kept_and_formatted_only_when_read(node: Node) -> None:
    ref = await node.spawn(Worker, "a")
    with pytest.raises(ActorExited):
        await ref.call(("crash", "boom"))
    reason = ref.reason
    assert isinstance(reason, Crashed)
    assert reason._traceback is None
    assert "RuntimeError: boom" in reason.traceback


async def test_calls_pending_when_the_actor_dies_fail_instead_of_hanging(node: Node) -> None:
    ref = await node.spawn(Worker, "a")
    blocker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    first = asyncio.ensure_future(ref.call(("sleep", blocker)))
    second = asyncio.ensure_future(ref.call("queued"))
    await asyncio.sleep(0)
    ref.kill()
    for pending in (first, second):
        with pytest.raises(ActorExited) as info:
            await pending
        assert info.value.reason == Killed()


async def test_a_call_to_a_dead_actor_raises_actor_exited(node: Node) -> None:
    ref = await node.spawn(Worker, "a")
    await ref.stop()
    with pytest.raises(ActorExited):
        await ref.call("anyone?")


async def test_a_slow_call_raises_call_timeout_and_the_actor_lives_on(node: Node) -> None:
    ref = await node.spawn(Worker, "a")
    blocker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(CallTimeout):
        await ref.call(("sleep", blocker), timeout=0.01)
    blocker.set_result(None)
    assert await ref.call("after") == ("a", "after")


async def test_stop_runs_terminate_and_returns_the_reason(node: Node) -> None:
    journal = Journal()
    ref = await node.spawn(Worker, "a", journal)
    assert await ref.stop(Shutdown("bye")) == Shutdown("bye")
    assert journal.of("terminate") == [("terminate", "a", Shutdown("bye"))]
    assert await ref.wait() == Shutdown("bye")


async def test_self_stop_ends_the_actor_after_the_current_message(node: Node) -> None:
    journal = Journal()
    ref = await node.spawn(Worker, "a", journal)
    assert await ref.call(("exit", Normal())) == "stopping"
    assert await ref.wait() == Normal()
    assert journal.of("terminate") == [("terminate", "a", Normal())]


async def test_stop_kills_an_actor_whose_terminate_hangs_after_the_timeout(
    node: Node, clock: FakeClock
) -> None:
    ref = await node.spawn(Stubborn, "s")
    stopping = asyncio.ensure_future(ref.stop(Shutdown(), timeout=2.0))
    await asyncio.sleep(0)
    assert ref.alive
    await clock.jump(2.0)
    assert await stopping == Killed()


async def test_kill_skips_terminate(node: Node) -> None:
    journal = Journal()
    ref = await node.spawn(Worker, "a", journal)
    ref.kill()
    assert await ref.wait() == Killed()
    assert journal.of("terminate") == []


async def test_an_actor_cannot_wait_for_its_own_stop(node: Node) -> None:
    class SelfStopper(Actor):
        async def handle_call(self, request: object) -> object:
            try:
                await self.ref.stop()
            except ActorError as exc:
                return str(exc)
            return "no error"

    ref = await node.spawn(SelfStopper)
    assert "own stop" in await ref.call("go")


async def test_init_failure_propagates_from_spawn(node: Node) -> None:
    with pytest.raises(RuntimeError, match="cannot start"):
        await node.spawn(Worker, "a", None, "no")


async def test_ignore_from_init_is_reported_as_start_failed_by_spawn(node: Node) -> None:
    class Shy(Actor):
        async def init(self) -> None:
            raise Ignore

    with pytest.raises(StartFailed, match="ignore"):
        await node.spawn(Shy)


async def test_names_register_and_unregister_with_the_actor(node: Node) -> None:
    ref = await node.spawn(Worker, "a", name="alpha")
    assert node.whereis("alpha") is ref
    with pytest.raises(NameTaken):
        await node.spawn(Worker, "b", name="alpha")
    await ref.stop()
    assert node.whereis("alpha") is None
    again = await node.spawn(Worker, "c", name="alpha")
    assert node.whereis("alpha") is again


async def test_refs_are_equal_only_for_the_same_incarnation(node: Node) -> None:
    a = await node.spawn(Worker)
    b = await node.spawn(Worker)
    assert a != b and a == a
    assert len({a, b, a}) == 2
    assert a.id != b.id


async def test_a_linked_actor_dies_with_an_abnormal_exit(node: Node) -> None:
    a = await node.spawn(Worker, "a")
    b = await node.spawn(Worker, "b")
    node.link(a, b)
    with pytest.raises(ActorExited):
        await a.call(("crash", "x"))
    assert await b.wait() == Crashed(RuntimeError("x"))


async def test_a_normal_exit_does_not_kill_a_linked_actor(node: Node) -> None:
    a = await node.spawn(Worker, "a")
    b = await node.spawn(Worker, "b")
    node.link(a, b)
    await a.stop(Normal())
    assert b.alive


async def test_an_actor_trapping_exits_gets_an_exit_message(node: Node) -> None:
    journal = Journal()

    class Trapper(Worker):
        trap_exits = True

    a = await node.spawn(Worker, "a")
    t = await node.spawn(Trapper, "t", journal)
    node.link(a, t)
    a.kill()
    assert await t.call("sync") == ("t", "sync")
    assert journal.of("info") == [("info", "t", Exit(a, Killed()))]


async def test_unlink_stops_exit_propagation(node: Node) -> None:
    a = await node.spawn(Worker, "a")
    b = await node.spawn(Worker, "b")
    node.link(a, b)
    node.unlink(b, a)
    a.kill()
    assert b.alive


async def test_a_monitor_delivers_down_with_the_reason(node: Node) -> None:
    journal = Journal()
    target = await node.spawn(Worker, "target")
    watcher = await node.spawn(Worker, "watcher", journal)
    mid = node.monitor(watcher, target)
    await target.stop(Shutdown("done"))
    await watcher.call("sync")
    assert journal.of("info") == [("info", "watcher", Down(target, Shutdown("done"), mid))]


async def test_monitoring_a_dead_actor_delivers_down_at_once(node: Node) -> None:
    journal = Journal()
    target = await node.spawn(Worker, "target")
    target.kill()
    watcher = await node.spawn(Worker, "watcher", journal)
    mid = node.monitor(watcher, target)
    await watcher.call("sync")
    assert journal.of("info") == [("info", "watcher", Down(target, Killed(), mid))]


async def test_demonitor_cancels_the_down(node: Node) -> None:
    journal = Journal()
    target = await node.spawn(Worker, "target")
    watcher = await node.spawn(Worker, "watcher", journal)
    mid = node.monitor(watcher, target)
    node.demonitor(watcher, mid)
    target.kill()
    await watcher.call("sync")
    assert journal.of("info") == []


async def test_spawned_actors_emit_started_and_exited_events(node: Node, events: EventLog) -> None:
    ref = await node.spawn(Worker, name="evented")
    ref.kill()
    exited = await events.wait_for("actor.exited", "evented")
    assert exited.data["reason"]["kind"] == "killed"
    assert events.kinds()[:2] == ["actor.started", "actor.exited"]


async def test_node_events_stream_yields_events_from_the_moment_it_is_made(node: Node) -> None:
    async with node.events() as stream:
        ref = await node.spawn(Worker, name="streamed")
        event = await stream.next("actor.started")
        assert event.subject == "streamed"
        ref.kill()
        assert (await stream.next("actor.exited")).data["reason"]["kind"] == "killed"


async def test_closing_the_node_stops_its_actors_newest_first() -> None:
    journal = Journal()
    async with Node() as node:
        await node.spawn(Worker, "first", journal)
        await node.spawn(Worker, "second", journal)
    assert journal.tags("terminate") == ["second", "first"]


async def test_an_actor_calling_itself_gets_an_error_instead_of_a_deadlock(node: Node) -> None:
    class Narcissus(Actor):
        async def handle_call(self, request: object) -> object:
            if request == "outer":
                try:
                    await self.ref.call("inner")
                except ActorError as exc:
                    return str(exc)
            return "inner"

    ref = await node.spawn(Narcissus)
    assert "called itself" in await ref.call("outer")


async def test_an_actor_feeding_itself_mail_does_not_starve_the_loop(node: Node) -> None:
    class Spinner(Actor):
        async def init(self) -> None:
            self.spins = 0

        async def handle_cast(self, message: object) -> None:
            self.spins += 1
            self.ref.cast(message)

    spinner = await node.spawn(Spinner)
    spinner.cast("spin")
    other = await node.spawn(Worker, "other")
    assert await other.call("still served") == ("other", "still served")
    spinner.kill()


async def test_a_trapping_child_ends_with_terminate_when_its_parent_exits(node: Node) -> None:
    journal = Journal()

    class TrappingWorker(Worker):
        trap_exits = True

    parent = await node.spawn(Worker, "parent")
    child = await node.spawn(TrappingWorker, "child", journal)
    child._parent = parent
    node.link(parent, child)
    with pytest.raises(ActorExited):
        await parent.call(("crash", "down"))
    assert await child.wait() == Crashed(RuntimeError("down"))
    assert journal.tags("terminate") == ["child"]


async def test_kill_can_carry_the_reason_a_watchdog_killed_for(node: Node) -> None:
    from beamish import Hung

    ref = await node.spawn(Worker, "a")
    ref.kill(Hung(silent_for_s=120.0))
    assert await ref.wait() == Hung(silent_for_s=120.0)
