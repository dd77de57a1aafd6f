"""What a ChildSpec can start: Actor classes, nested specs, ChildStarter objects, other isolations."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from beamish import (
    ActorExited,
    ActorRef,
    ChildSpec,
    Ignore,
    Node,
    Normal,
    SpecError,
    StartFailed,
    SupervisorSpec,
)
from beamish.testing import wait_for_restart

from ._actors import Journal, Worker

pytestmark = pytest.mark.timeout(10)


class Starter:
    """A ChildStarter: spawns a Worker itself (as AgentSpec does with its own actor)."""

    child_type = "worker"

    def __init__(self, journal: Journal, outcome: str = "ok") -> None:
        self.journal = journal
        self.outcome = outcome
        self.calls: list[ChildSpec] = []

    async def start_child(self, node: Node, spec: ChildSpec) -> ActorRef:
        self.calls.append(spec)
        if self.outcome == "ignore":
            raise Ignore
        if self.outcome == "fail":
            raise ConnectionError("upstream down")
        if self.outcome == "not a ref":
            return "nonsense"  # type: ignore[return-value]
        return await node.start_actor(ChildSpec(spec.id, Worker, args=(str(spec.id), self.journal)))


async def test_a_child_starter_object_starts_and_restarts_the_child(node: Node) -> None:
    journal = Journal()
    starter = Starter(journal)
    sup = await node.start_supervisor(SupervisorSpec([ChildSpec("agent", starter)], intensity=3))
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    ref.kill()
    new = await wait_for_restart(sup, "agent", ref)
    assert await new.call("hi") == ("agent", "hi")
    assert [s.id for s in starter.calls] == ["agent", "agent"]


async def test_a_child_started_by_a_starter_is_linked_to_its_supervisor(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([ChildSpec("agent", Starter(journal))]))
    ref = (await sup.which_children())[0].ref
    assert ref is not None
    sup.kill()
    assert not (await ref.wait()).normal


async def test_a_starter_raising_ignore_is_otp_ignore(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([ChildSpec("agent", Starter(Journal(), "ignore"))]))
    assert [(c.id, c.ref) for c in await sup.which_children()] == [("agent", None)]


async def test_a_starter_failing_fails_the_start_naming_the_child(node: Node) -> None:
    with pytest.raises(StartFailed) as info:
        await node.start_supervisor(SupervisorSpec([ChildSpec("agent", Starter(Journal(), "fail"))]))
    assert info.value.child_id == "agent"
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_a_starter_returning_something_else_than_a_ref_is_a_spec_error(node: Node) -> None:
    with pytest.raises(SpecError, match="not an ActorRef"):
        await node.start_supervisor(SupervisorSpec([ChildSpec("agent", Starter(Journal(), "not a ref"))]))


async def test_a_registered_isolation_starter_receives_the_spec_and_its_child_is_supervised() -> None:
    journal = Journal()
    seen: list[ChildSpec] = []

    async def fake_process_starter(node: Node, spec: ChildSpec) -> ActorRef:
        seen.append(spec)
        as_task = dataclasses.replace(spec, isolation="task", max_memory_mb=None, hang_after_s=None)
        return await node.start_actor(as_task)

    async with Node() as node:
        node.register_isolation("process", fake_process_starter)
        spec = ChildSpec(
            "p", Worker, args=("p", journal), isolation="process", max_memory_mb=64, hang_after_s=5
        )
        sup = await node.start_supervisor(SupervisorSpec([spec], intensity=2))
        ref = (await sup.which_children())[0].ref
        assert ref is not None
        ref.kill()
        await wait_for_restart(sup, "p", ref)
    assert [(s.id, s.max_memory_mb, s.hang_after_s) for s in seen] == [("p", 64, 5), ("p", 64, 5)]
    assert journal.tags("init") == ["p", "p"]


async def test_task_isolation_cannot_be_replaced() -> None:
    async def starter(node: Node, spec: ChildSpec) -> ActorRef:
        raise AssertionError

    with pytest.raises(SpecError, match="built in"):
        Node().register_isolation("task", starter)


async def test_exit_now_unwinds_the_callback_and_runs_terminate(node: Node) -> None:
    journal = Journal()

    class Quitter(Worker):
        async def handle_call(self, request: Any) -> Any:
            self.exit_now(Normal())
            raise AssertionError("not reached")

    ref = await node.spawn(Quitter, "q", journal)
    with pytest.raises(ActorExited) as info:
        await ref.call("bye")
    assert info.value.reason == Normal()
    assert journal.of("terminate") == [("terminate", "q", Normal())]


async def test_an_unknown_isolation_cannot_be_registered() -> None:
    async def starter(node: Node, spec: ChildSpec) -> ActorRef:
        raise AssertionError

    with pytest.raises(SpecError, match="'thread'"):
        Node().register_isolation("thread", starter)
