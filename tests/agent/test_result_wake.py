"""``node.result`` of a task agent's run is woken in-process when the run's outcome is stored (not
by reading the store again and again); a run ended by another Store — another process's — is
still found by reading, the fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from beamish import AgentSpec
from beamish.agent import _runs
from beamish.journal import open_store
from beamish.journal._runs import watch_run
from beamish.runtime import Node, SupervisorSpec

from ._scripts import write_script

pytestmark = pytest.mark.timeout(60)


def _spec(tmp: Path) -> AgentSpec:
    path = write_script(tmp, "answer", [{"text": "done {task}"}])
    return AgentSpec(name="support", instructions="Answer.", model=f"scripted:{path}", isolation="task")


async def test_a_task_agents_run_wakes_its_result_when_it_ends_without_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runs, "LOCAL_RESULT_POLL_S", 3600.0)  # a read would come only after an hour
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([_spec(tmp_path).child_spec()]))
        reads = 0
        store = await _runs.runs_of(node).store()
        get_run = store.get_run

        async def counted(run_id: str) -> object:
            nonlocal reads
            reads += 1
            return await get_run(run_id)

        monkeypatch.setattr(store, "get_run", counted)
        for i in range(3):
            result = await node.result(await node.submit("support", f"ticket {i}"), timeout=30)
            assert result.status == "succeeded" and result.output == f"done ticket {i}"
        assert reads <= 3 * 2, f"{reads} reads for 3 runs: each read once, then once when woken"


async def test_a_run_ended_by_another_store_is_found_by_reading(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.db"
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([_spec(tmp_path).child_spec()]))
        other = await open_store(url)
        try:
            await other.create_run("elsewhere", "t", run_id="r1")
            with watch_run("r1") as changed:  # another Store of this process still wakes
                await other.update_run("r1", status="running")
                assert not changed.is_set(), "a run starting wakes nobody"
                await other.update_run("r1", status="failed")
                assert changed.is_set()
            # a run of an agent this node does not serve, ended with no wake: found by reading
            await other.update_run("r1", status="queued")
            waiter = asyncio.ensure_future(node.result("r1", timeout=30))
            await other.execute("UPDATE runs SET status = 'succeeded' WHERE run_id = 'r1'")
            assert (await waiter).status == "succeeded"
        finally:
            await other.close()
