"""isolation="process": each child in its own OS process, behind a proxy actor, restarted in milliseconds.

These tests use real processes and short real timeouts where no fake clock can reach (a child's
heartbeat is real time), and wait on events with bounded timeouts, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from beamish import (
    Actor,
    ActorExited,
    ActorRef,
    ChildSpec,
    Crashed,
    Hung,
    Killed,
    MemoryExceeded,
    Node,
    Normal,
    Shutdown,
    SpecError,
    StartFailed,
    SupervisorSpec,
)
from beamish.errors import IsolationError
from beamish.runtime._events import EventStream
from beamish.runtime._process import zygote_of
from beamish.testing import wait_for

from .test_process_support import Echo, FailsInit

pytestmark = pytest.mark.timeout(60)  # bounds only: a busy machine may slow a zygote start


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node() as node:
        yield node


def process_child(child_id: str, **options: Any) -> ChildSpec:
    args = options.pop("args", (child_id,))
    return ChildSpec(child_id, Echo, args=args, isolation="process", **options)


async def only_child(sup: Any) -> ActorRef:
    (info,) = await sup.which_children()
    assert info.ref is not None
    ref: ActorRef = info.ref
    return ref


async def next_start(events: EventStream, child_id: str) -> None:
    while True:
        event = await asyncio.wait_for(events.next("child.started"), 20)
        if event.data["id"] == child_id:
            return


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_process_child_serves_calls_casts_and_messages_from_its_own_process(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")]))
    ref = await only_child(sup)
    assert await ref.call("hello") == ["a", "hello"]
    child_pid = await ref.call("pid")
    assert child_pid != os.getpid()
    ref.cast({"n": 1})
    ref.send("ping")
    assert await ref.call("casts") == [{"n": 1}, {"info": "ping"}]


async def test_a_sigkilled_child_exits_killed_and_its_supervisor_restarts_it(node: Node) -> None:
    async with node.events() as events:
        sup = await node.start_supervisor(SupervisorSpec([process_child("a")], intensity=5))
        ref = await only_child(sup)
        pid = await ref.call("pid")
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.wait_for(ref.wait(), 10) == Killed()
        await next_start(events, "a")
        await next_start(events, "a")
    again = await only_child(sup)
    assert again != ref
    assert await again.call("again") == ["a", "again"]
    assert await again.call("pid") != pid


async def test_a_raising_child_crashes_with_the_remote_traceback(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="temporary")]))
    ref = await only_child(sup)
    with pytest.raises(ActorExited) as caught:
        await ref.call("boom")
    reason = caught.value.reason
    assert isinstance(reason, Crashed)
    assert reason.message == "ValueError: boom from the child"
    assert 'raise ValueError("boom from the child")' in reason.traceback
    assert "test_process_support.py" in reason.traceback
    assert await ref.wait() == reason


async def test_a_child_blocking_its_loop_is_killed_as_hung_and_where_it_hung_is_reported(
    node: Node,
) -> None:
    sup = await node.start_supervisor(
        SupervisorSpec([process_child("a", hang_after_s=0.5, restart="temporary")])
    )
    ref = await only_child(sup)
    assert await ref.call("fine") == ["a", "fine"]  # a healthy child keeps beating
    pid = await ref.call("pid")
    async with node.events() as events:
        with pytest.raises(ActorExited) as caught:
            await ref.call("block", timeout=10)
        hung = await asyncio.wait_for(events.next("watchdog.hung"), 10)
    reason = caught.value.reason
    assert isinstance(reason, Hung) and reason.silent_for_s >= 0.5
    assert hung.data["pid"] == pid
    assert "test_process_support.py" in hung.data["stack"] and "handle_call" in hung.data["stack"]
    await wait_gone(pid)


async def test_a_child_allocating_without_bound_is_stopped_by_its_memory_limit(node: Node) -> None:
    sup = await node.start_supervisor(
        SupervisorSpec([process_child("a", max_memory_mb=200, restart="temporary")])
    )
    ref = await only_child(sup)
    with pytest.raises(ActorExited) as caught:
        await ref.call("hog", timeout=20)
    reason = caught.value.reason
    assert isinstance(reason, MemoryExceeded)
    assert reason.limit_mb == 200


async def test_a_child_growing_past_its_limit_between_calls_is_killed_by_the_nodes_rss_poll(
    node: Node,
) -> None:
    child = process_child("a", max_memory_mb=60, restart="temporary")
    sup = await node.start_supervisor(SupervisorSpec([child]))
    ref = await only_child(sup)
    with pytest.raises(ActorExited) as caught:
        for _ in range(200):  # 1 MiB a call, paced so the 50 ms poll sees RSS cross the limit
            await ref.call({"grow": 1})
            await asyncio.sleep(0.01)
    reason = caught.value.reason
    assert isinstance(reason, MemoryExceeded)
    assert reason.limit_mb == 60 and reason.used_mb > 60  # measured by the node, past the limit


async def test_pending_calls_fail_at_once_when_the_child_dies(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="temporary")]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    pending = asyncio.ensure_future(ref.call("block", timeout=30))
    queued = asyncio.ensure_future(ref.call("after", timeout=30))
    await asyncio.sleep(0)  # both calls are now in the proxy's hands
    os.kill(pid, signal.SIGKILL)
    for call in (pending, queued):
        with pytest.raises(ActorExited) as caught:
            await asyncio.wait_for(call, 2)
        assert caught.value.reason == Killed()


async def test_one_for_all_over_process_children_restarts_all_of_them_in_order(
    node: Node, tmp_path: Path
) -> None:
    log = tmp_path / "starts.log"
    children = [process_child(c, args=(c, str(log))) for c in ("a", "b", "c")]
    async with node.events() as events:
        sup = await node.start_supervisor(SupervisorSpec(children, strategy="one_for_all", intensity=5))
        before = {info.id: info.ref for info in await sup.which_children()}
        assert before["b"] is not None
        os.kill(await before["b"].call("pid"), signal.SIGKILL)
        for _ in range(2):
            for child_id in ("a", "b", "c"):
                await next_start(events, child_id)
    started = [line.split()[0] for line in log.read_text().splitlines()]
    assert started == ["a", "b", "c", "a", "b", "c"]
    after = await sup.which_children()
    assert [info.id for info in after] == ["a", "b", "c"]
    for info in after:
        assert info.ref is not None and info.ref != before[info.id]
        assert await info.ref.call("x") == [info.id, "x"]


async def test_stopping_a_process_child_runs_its_terminate_in_the_child(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "terminate.log"
    monkeypatch.setenv("BEAMISH_TEST_TERMINATE_LOG", str(log))  # the node's zygote starts after this
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    await sup.terminate_child("a")
    assert ref.reason == Shutdown()
    assert log.read_text() == "a shutdown\n"
    await wait_gone(pid)


async def test_a_child_that_stops_itself_exits_normal_and_a_transient_one_stays_down(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="transient")]))
    ref = await only_child(sup)
    assert await ref.call("stop") == "stopping"
    assert await asyncio.wait_for(ref.wait(), 10) == Normal()
    (info,) = await sup.which_children()
    assert info.ref is None


async def test_a_child_failing_its_init_fails_the_start_with_the_remote_traceback(node: Node) -> None:
    spec = SupervisorSpec([ChildSpec("bad", FailsInit, isolation="process")])
    with pytest.raises(StartFailed) as caught:
        await node.start_supervisor(spec)
    text = f"{caught.value!r} {caught.value.__cause__!r}"
    assert "cannot start in the child" in text
    assert 'raise RuntimeError("cannot start in the child")' in text


async def test_a_reply_or_request_that_cannot_cross_the_wire_fails_the_call_and_not_the_child(
    node: Node,
) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")]))
    ref = await only_child(sup)
    with pytest.raises(IsolationError, match="JSON"):
        await ref.call("set")
    with pytest.raises(IsolationError, match="JSON"):
        await ref.call(object())
    assert await ref.call("still here") == ["a", "still here"]


async def test_specs_that_cannot_reach_a_child_are_refused_with_a_clear_error(node: Node) -> None:
    class Local(Actor):
        pass

    with pytest.raises(SpecError, match="module level"):
        await node.start_supervisor(SupervisorSpec([ChildSpec("l", Local, isolation="process")]))
    with pytest.raises(SpecError, match="JSON-safe"):
        await node.start_supervisor(SupervisorSpec([process_child("j", args=({1},))]))


async def test_closing_the_node_stops_its_children_and_its_zygote() -> None:
    async with Node() as node:
        sup = await node.start_supervisor(SupervisorSpec([process_child("a"), process_child("b")]))
        pids = [await info.ref.call("pid") for info in await sup.which_children() if info.ref]
        client = zygote_of(node)
        assert client is not None and client.pid is not None
        zygote = client.pid
    for pid in (*pids, zygote):
        await wait_gone(pid)
    assert zygote_of(node) is None


NODE_SCRIPT = """
import asyncio, json, os, sys
from beamish import ChildSpec, Node, SupervisorSpec
from beamish.runtime._process import zygote_of
from runtime.test_process_support import Echo

async def main():
    node = Node()
    children = [ChildSpec(c, Echo, args=(c,), isolation="process") for c in ("a", "b", "c")]
    sup = await node.start_supervisor(SupervisorSpec(children))
    refs = [info.ref for info in await sup.which_children()]
    pids = [await ref.call("pid") for ref in refs]
    marker = sys.argv[1]
    blocked = asyncio.ensure_future(refs[2].call({"block": marker}, timeout=None))
    while not os.path.exists(marker):  # the child is now blocked: its loop cannot see EOF
        await asyncio.sleep(0.005)
    print(json.dumps({"zygote": zygote_of(node).pid, "children": pids}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_no_child_process_outlives_a_sigkilled_node(tmp_path: Path) -> None:
    """Even a child whose loop is blocked (so it cannot notice EOF) dies: PR_SET_PDEATHSIG."""
    tests_dir = Path(__file__).resolve().parent.parent
    marker = tmp_path / "blocked"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_SCRIPT, str(marker), cwd=tests_dir, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 40)
        started = json.loads(line)
        pids = [started["zygote"], *started["children"]]
        assert all(alive(pid) for pid in pids)
        proc.kill()  # SIGKILL: the node gets no chance to clean up
        await proc.wait()
        for pid in pids:
            await wait_gone(pid)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``pid`` no longer runs; the process is reaped by its parent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while alive(pid):
        assert loop.time() < deadline, f"process {pid} still alive after {timeout}s"
        await asyncio.sleep(0.005)


async def test_children_of_a_killed_zygote_die_with_it_and_restart_from_a_new_one(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")], intensity=5))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    client = zygote_of(node)
    assert client is not None and client.pid is not None
    old_zygote = client.pid
    async with node.events() as events:
        os.kill(old_zygote, signal.SIGKILL)
        reason = await asyncio.wait_for(ref.wait(), 10)
        assert isinstance(reason, Killed | Crashed)
        await next_start(events, "a")
    await wait_gone(pid)
    again = await only_child(sup)
    assert await again.call("x") == ["a", "x"]
    new_client = zygote_of(node)
    assert new_client is not None and new_client.pid not in (None, old_zygote)


async def test_children_of_different_actor_modules_share_one_zygote(node: Node) -> None:
    from .test_process_loopwatch import Blocker  # a second module, imported by the zygote on demand

    spec = SupervisorSpec([process_child("a"), ChildSpec("b", Blocker, isolation="process")])
    sup = await node.start_supervisor(spec)
    a, b = (info.ref for info in await sup.which_children())
    assert a is not None and b is not None
    assert await b.call(0) == "done"
    assert await a.call("x") == ["a", "x"]


async def test_a_brutal_kill_of_a_process_child_kills_its_os_process(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", shutdown="brutal_kill")]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    await sup.terminate_child("a")
    assert ref.reason == Killed()
    await wait_gone(pid)


async def test_a_child_that_will_not_stop_is_killed_after_its_shutdown_timeout(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", shutdown=0.2)]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    busy = asyncio.ensure_future(ref.call("block", timeout=30))  # its loop is stuck: no polite stop
    await asyncio.sleep(0)
    await asyncio.wait_for(sup.terminate_child("a"), 10)
    assert ref.reason == Killed()
    await wait_gone(pid)
    with pytest.raises(ActorExited):
        await busy


async def test_modules_preloaded_into_a_running_zygote_are_there_before_the_next_fork(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")], intensity=5))
    ref = await only_child(sup)
    assert await ref.call({"module_loaded": "json.tool"}) is False
    node.preload("json.tool")
    async with node.events() as events:
        os.kill(await ref.call("pid"), signal.SIGKILL)
        await next_start(events, "a")
    again = await only_child(sup)
    assert await again.call({"module_loaded": "json.tool"}) is True


async def test_a_child_whose_node_end_closes_stops_by_itself_with_terminate(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "terminate.log"
    monkeypatch.setenv("BEAMISH_TEST_TERMINATE_LOG", str(log))  # the node's zygote starts after this
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="temporary")]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    proxy = ref._actor
    assert proxy is not None and proxy._protocol is not None and proxy._protocol.transport is not None
    proxy._protocol.transport.abort()  # the node's end of the socket closes, as when a node dies
    await wait_gone(pid)
    assert log.read_text() == "a shutdown\n"


MAIN_SCRIPT = """
import asyncio, os
from beamish import Actor, ChildSpec, Node, SupervisorSpec

class Greeter(Actor):
    async def handle_call(self, request):
        return f"hello {request} from {__name__}"

async def main():
    async with Node() as node:
        sup = await node.start_supervisor(SupervisorSpec([ChildSpec("g", Greeter, isolation="process")]))
        (info,) = await sup.which_children()
        print(await info.ref.call("world"), flush=True)

if __name__ == "__main__":
    asyncio.run(main())
"""


async def test_an_actor_defined_in_the_main_script_runs_without_rerunning_the_script(tmp_path: Path) -> None:
    script = tmp_path / "company.py"
    script.write_text(MAIN_SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "hello world from __beamish_main__\n"


async def test_a_preload_module_that_cannot_be_imported_fails_the_start_naming_it(node: Node) -> None:
    node.preload("no_such_module_for_beamish")
    with pytest.raises(StartFailed) as caught:
        await node.start_supervisor(SupervisorSpec([process_child("a")]))
    cause = caught.value.__cause__
    assert isinstance(cause, IsolationError)
    assert "No module named 'no_such_module_for_beamish'" in str(cause)


async def test_a_child_that_breaks_the_wire_protocol_is_killed_and_crashes_naming_it(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="temporary")]))
    ref = await only_child(sup)
    pid = await ref.call("pid")
    with pytest.raises(ActorExited) as caught:
        await ref.call("garbage")
    reason = caught.value.reason
    assert isinstance(reason, Crashed)
    assert "IsolationError" in reason.message and "not UTF-8 JSON" in reason.message
    await wait_gone(pid)


async def test_a_restart_is_served_by_the_spare_forked_ahead_of_need(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([process_child("a")], intensity=5))
    ref = await only_child(sup)
    client = zygote_of(node)
    assert client is not None
    await wait_for(lambda: client._spare is not None, 10, "a spare")
    assert client._spare is not None
    spare_pid = client._spare[0]
    async with node.events() as events:
        os.kill(await ref.call("pid"), signal.SIGKILL)
        await next_start(events, "a")
    again = await only_child(sup)
    assert await again.call("pid") == spare_pid


async def test_the_zygote_of_a_node_closed_with_no_process_child_alive_goes_with_the_node() -> None:
    async with Node() as node:
        sup = await node.start_supervisor(SupervisorSpec([process_child("a", restart="temporary")]))
        ref = await only_child(sup)
        with pytest.raises(ActorExited):
            await ref.call("boom")
        client = zygote_of(node)
        assert client is not None and client.pid is not None
        zygote = client.pid
    del node, sup, ref, client
    gc.collect()
    await wait_gone(zygote)
