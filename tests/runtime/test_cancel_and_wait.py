"""Stopping a background task never swallows the stopper's own cancellation.

Every place that stops a task of its own (cancel it, or give it a grace period, then wait for its
end) goes through ``cancel_and_wait``; each is driven here with a task that is slow to wind down,
and the stopper is cancelled while it waits: the cancellation must reach the stopper's caller, and
the task must not be left running.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from contextvars import Context
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from beamish._exits import Shutdown
from beamish._tasks import cancel_and_wait
from beamish.agent._mcp_tools import McpToolSource
from beamish.agent._runs import Runs
from beamish.agent.models._protocol import _next_within
from beamish.bus._notify import Waker
from beamish.byo._step import step
from beamish.cluster._node import ClusterNode
from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._faults import FaultPlan
from beamish.company._memory_service import MemoryService
from beamish.dashboard import DashboardServer
from beamish.memory import KnowledgeGraph
from beamish.schedule import SchedulerActor
from beamish.testing import FakeClock, settle
from beamish.upgrade._upgrader import Upgrader

pytestmark = pytest.mark.timeout(20)


class Stubborn(asyncio.Task[None]):
    """A background task that never ends by itself and, once cancelled, takes until ``release`` to
    wind down; ``awaited`` is set as soon as someone waits for it."""

    def __init__(self) -> None:
        self.awaited = asyncio.Event()
        self.release = asyncio.Event()
        super().__init__(self._run())

    async def _run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self.release.wait()
            raise

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Context | None = None) -> None:
        super().add_done_callback(fn, context=context)
        self.awaited.set()


async def stopper_is_cancelled(stop: Callable[[], Awaitable[Any]], task: Stubborn) -> None:
    """Run ``stop()``; once it waits for ``task``, cancel it: it must end cancelled, and so must ``task``."""
    stopper = asyncio.ensure_future(stop())
    await asyncio.wait_for(task.awaited.wait(), 5)
    stopper.cancel()
    task.release.set()
    await asyncio.wait({stopper, task}, timeout=5)
    outcome = stopper.exception() if stopper.done() and not stopper.cancelled() else "still running"
    assert stopper.done() and stopper.cancelled(), f"the stopper swallowed its cancellation: {outcome!r}"
    assert task.done() and task.cancelled()


# -- the helper itself -------------------------------------------------------------------------------
async def test_a_task_is_cancelled_and_its_own_cancellation_is_not_raised() -> None:
    task = Stubborn()
    task.release.set()
    assert await cancel_and_wait(task) is None
    assert task.cancelled()


async def test_the_tasks_own_exception_is_returned_not_raised() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.ensure_future(fails())
    await asyncio.wait({task})
    error = await cancel_and_wait(task)
    assert isinstance(error, ValueError)


async def test_within_its_grace_a_task_ends_by_itself_and_is_not_cancelled() -> None:
    stop = asyncio.Event()

    async def polite() -> str:
        await stop.wait()
        return "ended by itself"

    task = asyncio.ensure_future(polite())
    waiting = asyncio.ensure_future(cancel_and_wait(task, grace_s=60))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is None
    assert task.result() == "ended by itself"


async def test_the_old_pattern_swallowed_the_callers_cancellation() -> None:
    """Why the helper exists: ``cancel(); await`` under ``suppress`` returns normally."""
    import contextlib

    task = Stubborn()

    async def old_stop() -> None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    stopper = asyncio.ensure_future(old_stop())
    await asyncio.wait_for(task.awaited.wait(), 5)
    stopper.cancel()
    task.release.set()
    await asyncio.wait({stopper}, timeout=5)
    assert stopper.done() and not stopper.cancelled()


@pytest.mark.parametrize("grace_s", [0.0, 60.0, float("inf")])
async def test_the_callers_cancellation_propagates_and_the_task_is_cancelled(grace_s: float) -> None:
    task = Stubborn()
    await stopper_is_cancelled(lambda: cancel_and_wait(task, grace_s=grace_s), task)


# -- every use ---------------------------------------------------------------------------------------
def _bare(cls: type, **attrs: Any) -> Any:
    """An instance of ``cls`` holding only what its stop path reads (its start was never run)."""
    obj = object.__new__(cls)
    for name, value in attrs.items():
        setattr(obj, name, value)
    return obj


def _cluster_node(**tasks: Any) -> ClusterNode:
    store = SimpleNamespace(clock=FakeClock(), run=_fails)
    runs = _bare(Runs, remote_wake=None)
    attrs = {
        "_placing": None, "_wakes": None, "_stopping": {}, "held": {}, "_task": None, "_placed": None,
        "_guarding": None, "_wake_holder": object(), "node": SimpleNamespace(runs=runs, name="n1"),
    }  # fmt: skip
    return _bare(ClusterNode, store=store, node_id="n1", **{**attrs, **tasks})  # type: ignore[no-any-return]


async def _fails(*_: Any) -> None:
    raise RuntimeError("no store in this test")


async def _nothing(*_: Any) -> None:
    return None


def _company(tmp_path: Path, task: Stubborn) -> Company:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    price = {"input_per_mtok": 0, "output_per_mtok": 0}
    agent = {"instructions": "Hi.", "model": "scripted:ceo.json", "price": price}
    company = Company(load_config_data({"agents": {"ceo": agent}}, tmp_path / "beamish.toml"), control=False)
    company._tail = task
    return company


def _knowledge_graph(tmp_path: Path, task: Stubborn) -> KnowledgeGraph:
    graph = KnowledgeGraph(tmp_path / "m.jsonl", report_repairs=False)
    graph._compactor, graph._compactor_sleeping = task, True
    return graph


USES: dict[str, Callable[[Path, Stubborn], Callable[[], Awaitable[Any]]]] = {
    "agent-registry-close": lambda _, t: _bare(Runs, _poller=t, _store=None).close,
    "company-stop-tail": lambda p, t: _company(p, t).stop,
    "cluster-node-stop-placer": lambda _, t: _cluster_node(_placing=t).stop,
    "cluster-node-stop-unit-stopping": lambda _, t: _cluster_node(_stopping={"u": t}).stop,
    "cluster-node-stop-heartbeat": lambda _, t: _cluster_node(_task=t).stop,
    "scheduler-actor-terminate": lambda _, t: (
        lambda: _bare(SchedulerActor, _loop_task=t, _owned=None).terminate(Shutdown())
    ),
    "upgrader-stop": lambda _, t: (
        _bare(Upgrader, node=SimpleNamespace(remove_event_sink=lambda _f: None), _task=t).stop
    ),
    "fault-plan-stop": lambda _, t: _bare(FaultPlan, _task=t).stop,
    "mailbox-waker-close": lambda _, t: _bare(Waker, _task=t, _waiters=set(), generation=0).close,
    "mcp-tool-source-close": lambda _, t: (
        _bare(McpToolSource, _stop=asyncio.Event(), _task=t, session=None).close
    ),
    "memory-service-terminate": lambda _, t: (
        lambda: _bare(
            MemoryService,
            server=SimpleNamespace(should_exit=False, force_exit=False),
            sock=socket.socket(),
            task=t,
            polite_s=0.0,
            graph=SimpleNamespace(aclose=_nothing),
        ).terminate(Shutdown())
    ),
    "dashboard-server-stop": lambda _, t: (
        _bare(DashboardServer, _task=t, _server=SimpleNamespace(should_exit=False, force_exit=False)).stop
    ),
    "durable-step-exit-on-error": lambda _, t: (
        lambda: _bare(
            step, _task=t, _body=asyncio.get_running_loop().create_future(), replayed=False
        ).__aexit__(RuntimeError, RuntimeError("boom"), None)
    ),
    "knowledge-graph-close-compactor": lambda p, t: _knowledge_graph(p, t).aclose,
}


@pytest.mark.parametrize("use", list(USES))
async def test_the_stoppers_cancellation_propagates_through_every_use(tmp_path: Path, use: str) -> None:
    task = Stubborn()
    await stopper_is_cancelled(USES[use](tmp_path, task), task)


async def test_a_cancelled_model_stream_read_raises_cancellation_not_a_timeout() -> None:
    """A stalled chunk read is abandoned on the clock's timeout; if its reader is cancelled while the
    read winds down, the reader gets CancelledError, not ModelTimeout's TimeoutError."""
    clock = FakeClock()
    winding_down, release = asyncio.Event(), asyncio.Event()

    class Stalled:
        def __aiter__(self) -> Stalled:
            return self

        async def __anext__(self) -> str:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                winding_down.set()
                await release.wait()
                raise
            return "never"

    reader = asyncio.ensure_future(_next_within(Stalled(), 5.0, clock))
    await settle()  # the read and its timer are waiting
    await clock.jump(5.0)
    await asyncio.wait_for(winding_down.wait(), 5)
    reader.cancel()
    release.set()
    await asyncio.wait({reader}, timeout=5)
    assert reader.done() and reader.cancelled(), reader.exception() if reader.done() else "still running"
