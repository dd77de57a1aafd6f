"""The dynamic API and OTP's error cases (supervisor_SUITE: start/terminate/restart/delete_child, sofo)."""

from __future__ import annotations

from typing import Any

import pytest

from beamish import (
    ActorExited,
    ChildSpec,
    Crashed,
    Node,
    Shutdown,
    SpecError,
    StartFailed,
    SupervisorRef,
    SupervisorSpec,
)
from beamish.errors import AlreadyPresent, AlreadyStarted, NotFound, Restarting, Running, SimpleOneForOneError
from beamish.testing import wait_for_restart

from ._actors import Journal, Worker

pytestmark = pytest.mark.timeout(10)


def worker(tag: str, journal: Journal, **spec: Any) -> ChildSpec:
    return ChildSpec(tag, Worker, args=(tag, journal), **spec)


async def started(node: Node, *children: ChildSpec, **flags: Any) -> SupervisorRef:
    sup: SupervisorRef = await node.start_supervisor(SupervisorSpec(list(children), **flags))
    return sup


async def test_start_child_starts_and_appends_a_child(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    ref = await sup.start_child(worker("b", journal))
    assert ref is not None and ref.alive
    assert [c.id for c in await sup.which_children()] == ["a", "b"]


async def test_start_child_with_a_running_id_raises_already_started(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    running = (await sup.which_children())[0].ref
    with pytest.raises(AlreadyStarted):
        await sup.start_child(worker("a", journal))
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("a", running)]
    assert running is not None and running.alive and journal.tags("init") == ["a"]


async def test_start_child_with_a_stopped_id_raises_already_present(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    await sup.terminate_child("a")
    with pytest.raises(AlreadyPresent):
        await sup.start_child(worker("a", journal))


async def test_start_child_that_fails_raises_start_failed_and_adds_nothing(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    a = (await sup.which_children())[0].ref
    with pytest.raises(StartFailed) as info:
        await sup.start_child(ChildSpec("bad", Worker, args=("bad", journal, "broken")))
    assert info.value.child_id == "bad" and isinstance(info.value.reason, Crashed)
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("a", a)]


async def test_start_child_that_ignores_returns_none_and_keeps_the_spec(node: Node) -> None:
    journal = Journal()
    sup = await started(node)
    assert await sup.start_child(ChildSpec("shy", Worker, args=("shy", journal, "ignore"))) is None
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("shy", None)]


async def test_start_child_of_a_temporary_child_that_ignores_keeps_nothing(node: Node) -> None:
    journal = Journal()
    sup = await started(node)
    spec = ChildSpec("shy", Worker, args=("shy", journal, "ignore"), restart="temporary")
    assert await sup.start_child(spec) is None
    assert await sup.which_children() == []


async def test_start_child_with_something_not_a_spec_is_a_spec_error_and_disturbs_nothing(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    with pytest.raises(SpecError, match="ChildSpec"):
        await sup.start_child({"id": "b"})  # type: ignore[arg-type]
    assert (await sup.count_children()).active == 1
    assert journal.tags("terminate") == []


async def test_terminate_child_stops_it_and_keeps_the_spec_without_restarting(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal), intensity=5)
    await sup.terminate_child("a")
    assert journal.of("terminate") == [("terminate", "a", Shutdown())]
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("a", None)]
    assert journal.tags("init") == ["a"]


async def test_terminate_child_of_a_temporary_child_drops_its_spec(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("t", journal, restart="temporary"))
    await sup.terminate_child("t")
    assert await sup.which_children() == []


async def test_terminate_child_of_an_unknown_id_raises_not_found(node: Node) -> None:
    sup = await started(node)
    with pytest.raises(NotFound):
        await sup.terminate_child("nobody")


async def test_restart_child_starts_a_stopped_child_again(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    await sup.terminate_child("a")
    ref = await sup.restart_child("a")
    assert ref is not None and ref.alive
    assert journal.tags("init") == ["a", "a"]


async def test_restart_child_of_a_running_child_raises_running(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    with pytest.raises(Running):
        await sup.restart_child("a")


async def test_restart_child_of_an_unknown_id_raises_not_found(node: Node) -> None:
    sup = await started(node)
    with pytest.raises(NotFound):
        await sup.restart_child("nobody")


async def test_restart_child_that_fails_raises_start_failed_and_keeps_the_spec(node: Node) -> None:
    journal = Journal()
    state = {"fail": False}

    class Flaky(Worker):
        async def init(self, tag: str = "f", journal: Journal | None = None, fail: Any = None) -> None:
            if state["fail"]:
                raise RuntimeError("not now")
            await super().init(tag, journal)

    sup = await started(node, ChildSpec("f", Flaky, args=("f", journal)))
    await sup.terminate_child("f")
    state["fail"] = True
    with pytest.raises(StartFailed):
        await sup.restart_child("f")
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("f", None)]


async def test_delete_child_forgets_a_stopped_child(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal), worker("b", journal))
    await sup.terminate_child("a")
    await sup.delete_child("a")
    assert [c.id for c in await sup.which_children()] == ["b"]
    with pytest.raises(NotFound):
        await sup.restart_child("a")


async def test_delete_child_of_a_running_child_raises_running(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal))
    with pytest.raises(Running):
        await sup.delete_child("a")


async def test_delete_child_of_an_unknown_id_raises_not_found(node: Node) -> None:
    sup = await started(node)
    with pytest.raises(NotFound):
        await sup.delete_child("nobody")


async def test_delete_child_of_a_restarting_child_raises_restarting(node: Node) -> None:
    from beamish import Backoff

    journal = Journal()
    sup = await started(node, worker("a", journal, backoff=Backoff(min_s=60, max_s=60)), intensity=5)
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    ref.kill()
    await sup.count_children()
    with pytest.raises(Restarting):
        await sup.delete_child("a")
    with pytest.raises(AlreadyPresent):
        await sup.start_child(worker("a", journal))


async def test_count_children_counts_specs_active_supervisors_and_workers(node: Node) -> None:
    journal = Journal()
    sup = await started(
        node,
        worker("a", journal),
        ChildSpec("s", SupervisorSpec([])),
        worker("b", journal, restart="transient"),
    )
    await sup.terminate_child("b")
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 2, 1, 2)


async def test_which_children_reports_type_restart_and_restart_counts(node: Node) -> None:
    journal = Journal()
    sup = await started(node, worker("a", journal, restart="transient"), ChildSpec("s", SupervisorSpec([])))
    infos = await sup.which_children()
    assert [(i.id, i.type, i.restart, i.restarts) for i in infos] == [
        ("a", "worker", "transient", 0),
        ("s", "supervisor", "permanent", 0),
    ]


async def test_a_dead_supervisor_refuses_calls_with_actor_exited(node: Node) -> None:
    sup = await started(node)
    await sup.stop(Shutdown())
    with pytest.raises(ActorExited):
        await sup.which_children()


# -- simple_one_for_one ------------------------------------------------------------------------------


def sofo(journal: Journal, **spec: Any) -> SupervisorSpec:
    template = ChildSpec("w", Worker, args=("w",), kwargs={"journal": journal}, **spec)
    return SupervisorSpec([template], strategy="simple_one_for_one", intensity=5)


async def test_simple_one_for_one_starts_children_with_extra_args(node: Node) -> None:
    journal = Journal()

    class Tagged(Worker):
        async def init(self, tag: str = "w", suffix: str = "", journal: Journal | None = None) -> None:  # type: ignore[override]
            await super().init(tag + suffix, journal)

    spec = SupervisorSpec(
        [ChildSpec("w", Tagged, args=("w",), kwargs={"journal": journal})], strategy="simple_one_for_one"
    )
    sup = await node.start_supervisor(spec)
    assert await sup.which_children() == []
    one = await sup.start_child(["-1"])
    two = await sup.start_child(["-2"])
    assert one is not None and two is not None
    assert journal.tags("init") == ["w-1", "w-2"]
    assert await one.call("x") == ("w-1", "x")
    infos = await sup.which_children()
    assert [(i.id, i.ref) for i in infos] == [(None, one), (None, two)]
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (1, 2, 2)


async def test_simple_one_for_one_restarts_a_child_with_its_own_args(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal))
    ref = await sup.start_child([])
    assert ref is not None
    ref.kill()
    infos = await sup.which_children()  # the exit was queued first, so the restart is done
    new = infos[0].ref
    assert new is not None and new is not ref and infos[0].restarts == 1


async def test_simple_one_for_one_terminate_child_takes_a_ref_and_removes_the_child(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal))
    ref = await sup.start_child([])
    assert ref is not None
    await sup.terminate_child(ref)
    assert not ref.alive
    assert await sup.which_children() == []


@pytest.mark.parametrize("call", ["terminate_child", "restart_child", "delete_child"])
async def test_simple_one_for_one_refuses_calls_by_id(node: Node, call: str) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal))
    with pytest.raises(SimpleOneForOneError):
        await getattr(sup, call)("w")


async def test_simple_one_for_one_stops_all_its_children_on_shutdown(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal))
    refs = [await sup.start_child([]) for _ in range(20)]
    await sup.stop(Shutdown())
    assert all(r is not None and not r.alive for r in refs)
    assert len(journal.of("terminate")) == 20


async def test_simple_one_for_one_temporary_children_vanish_when_they_exit(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal, restart="temporary"))
    ref = await sup.start_child([])
    assert ref is not None
    ref.kill()
    assert (await sup.count_children()).active == 0
    assert await sup.which_children() == []


async def test_wait_for_restart_returns_the_new_incarnation(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)], intensity=2))
    old = (await sup.which_children())[0].ref
    assert old is not None
    old.kill()
    assert (await wait_for_restart(sup, "a", old)) is not old


# -- hanging restart loops (supervisor_SUITE: hanging_restart_loop, hanging_restart_loop_simple) ----


async def test_a_child_stuck_in_a_restart_loop_can_be_inspected_terminated_and_restarted(node: Node) -> None:
    from ._actors import FailsWhileFlagged

    state: dict[str, Any] = {"fail": False}
    spec = ChildSpec("child1", FailsWhileFlagged, args=(state,), shutdown="brutal_kill")
    sup = await started(node, intensity=1_000_000)
    first = await sup.start_child(spec)
    assert first is not None
    state["fail"] = True
    first.kill()
    with pytest.raises(AlreadyPresent):
        await sup.start_child(spec)
    with pytest.raises(Restarting):
        await sup.restart_child("child1")
    with pytest.raises(Restarting):
        await sup.delete_child("child1")
    info = (await sup.which_children())[0]
    assert (info.id, info.ref, info.restarting) == ("child1", None, True)
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (1, 0, 0, 1)
    await sup.terminate_child("child1")
    info = (await sup.which_children())[0]
    assert (info.ref, info.restarting) == (None, False)
    state["fail"] = False
    second = await sup.restart_child("child1")
    assert second is not None
    state["fail"] = True
    second.kill()
    await sup.count_children()
    assert await sup.stop(Shutdown()) == Shutdown()  # the loop does not hang the shutdown


async def test_a_simple_one_for_one_child_stuck_restarting_is_terminated_by_its_old_ref(node: Node) -> None:
    from ._actors import FailsWhileFlagged

    state: dict[str, Any] = {"fail": False}
    template = ChildSpec("child1", FailsWhileFlagged, args=(state,), shutdown="brutal_kill")
    sup = await node.start_supervisor(
        SupervisorSpec([template], strategy="simple_one_for_one", intensity=10**6)
    )
    first = await sup.start_child([])
    assert first is not None
    state["fail"] = True
    first.kill()
    with pytest.raises(SimpleOneForOneError):
        await sup.restart_child("child1")
    info = (await sup.which_children())[0]
    assert (info.id, info.ref, info.restarting) == (None, None, True)
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (1, 0, 1)
    await sup.terminate_child(first)
    assert await sup.which_children() == []
    state["fail"] = False
    second = await sup.start_child([])
    assert second is not None
    state["fail"] = True
    second.kill()
    await sup.count_children()
    assert await sup.stop(Shutdown()) == Shutdown()


async def test_simple_one_for_one_terminate_child_of_a_dead_ref_is_ok_but_of_a_stranger_is_not_found(
    node: Node,
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(sofo(journal))
    ref = await sup.start_child([])
    assert ref is not None
    await sup.terminate_child(ref)
    await sup.terminate_child(ref)  # already gone: fine, as in OTP
    stranger = await node.spawn(Worker, "stranger")
    with pytest.raises(NotFound):
        await sup.terminate_child(stranger)
    assert stranger.alive


@pytest.mark.parametrize("restart", ["temporary", "permanent"])
async def test_simple_one_for_one_keeps_nothing_for_a_child_that_ignores(node: Node, restart: str) -> None:
    journal = Journal()
    template = ChildSpec("w", Worker, args=("w", journal), restart=restart)  # type: ignore[arg-type]
    sup = await node.start_supervisor(SupervisorSpec([template], strategy="simple_one_for_one"))
    assert await sup.start_child(["ignore"]) is None
    kept = await sup.start_child([])
    assert [(i.id, i.ref) for i in await sup.which_children()] == [(None, kept)]
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (1, 1, 1)
