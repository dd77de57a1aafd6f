"""The node's public ways for higher layers: unlinked actors, isolation starters, the process template."""

from __future__ import annotations

import os

import pytest

from beamish import Actor, ActorExited, ChildSpec, Ignore, Node, SpecError
from beamish.errors import IsolationError
from beamish.runtime._process import start_process_child, zygote_of
from beamish.testing import wait_for

from .test_process_support import Echo


class Counter(Actor):
    async def init(self, start: int, *, step: int = 1) -> None:
        self.value = start
        self.step = step

    async def handle_call(self, request: str) -> int:
        if request == "boom":
            raise RuntimeError("boom")
        self.value += self.step
        return self.value


class Declines(Actor):
    async def init(self) -> None:
        raise Ignore


@pytest.mark.timeout(10)
async def test_start_actor_starts_a_task_actor_from_a_child_spec_linked_to_nothing() -> None:
    async with Node() as node:
        watcher = await node.spawn(Counter, 0)
        ref = await node.start_actor(ChildSpec(id="counter", start=Counter, args=(10,), kwargs={"step": 5}))
        assert await ref.call("next") == 15
        assert ref.name == "counter" and node.whereis("counter") is None
        assert ref.os_pid is None
        with pytest.raises(ActorExited):
            await ref.call("boom")
        assert not ref.alive
        assert watcher.alive  # nobody was linked to it, and no supervisor restarts it
        assert await watcher.call("next") == 1


@pytest.mark.timeout(30)
async def test_start_actor_starts_a_process_actor_whose_ref_knows_its_os_pid() -> None:
    async with Node() as node:
        ref = await node.start_actor(ChildSpec(id="echo", start=Echo, isolation="process"))
        pid = await ref.call("pid")
        assert pid != os.getpid()
        assert ref.os_pid == pid
        await ref.stop()
        assert ref.os_pid is None


@pytest.mark.timeout(10)
async def test_start_actor_refuses_what_is_not_a_child_spec_and_passes_on_an_ignoring_init() -> None:
    async with Node() as node:
        with pytest.raises(SpecError, match="start_actor: expected a ChildSpec"):
            await node.start_actor(Counter)  # type: ignore[arg-type]
        with pytest.raises(Ignore):  # a ChildStarter's supervisor then ignores the child
            await node.start_actor(ChildSpec(id="declines", start=Declines))
        assert node.whereis("declines") is None


async def test_isolation_starter_names_the_process_starter_and_none_for_tasks() -> None:
    async with Node(loop_watch_s=None) as node:
        assert node.isolation_starter("process") is start_process_child
        assert node.isolation_starter("task") is None
        with pytest.raises(SpecError, match="isolation must be one of"):
            node.isolation_starter("thread")

        async def mine(node: Node, spec: ChildSpec) -> Echo:
            raise AssertionError("not started here")

        node.register_isolation("process", mine)  # type: ignore[arg-type]
        assert node.isolation_starter("process") is mine
        assert Node().isolation_starter("process") is start_process_child  # other nodes keep theirs


@pytest.mark.timeout(30)
async def test_warm_processes_starts_the_template_with_its_preloads_and_closing_stops_it() -> None:
    async with Node() as node:
        node.preload("json")
        node.preload("decimal")
        assert zygote_of(node) is None  # named, not started yet
        await node.warm_processes()
        client = zygote_of(node)
        assert client is not None and client.running
        assert {"json", "decimal"} <= set(client.preload)
        ref = await node.start_actor(ChildSpec(id="echo", start=Echo, isolation="process"))
        assert await ref.call("pid") == ref.os_pid
        await ref.stop()
    await wait_for(lambda: client.closed, 10, "the template to stop with the node")


@pytest.mark.timeout(30)
async def test_warming_with_a_preload_that_does_not_import_fails_with_its_name() -> None:
    async with Node() as node:
        node.preload("no_such_module_for_beamish")
        with pytest.raises(IsolationError, match="no_such_module_for_beamish"):
            await node.warm_processes()


def test_preload_refuses_what_is_not_a_module_name() -> None:
    with pytest.raises(SpecError, match="preload: 3 is not a module name"):
        Node().preload("json", 3)  # type: ignore[arg-type]
