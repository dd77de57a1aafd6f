"""The demo's fault plan finds the OS process of every process-isolated agent in a tree."""

from __future__ import annotations

import os

import pytest

from beamish import Actor, ChildSpec, Node, SupervisorSpec
from beamish.company._faults import agent_processes


class Pid(Actor):
    async def handle_call(self, request: str) -> int:
        return os.getpid()


@pytest.mark.timeout(30)
async def test_agent_processes_lists_process_children_at_any_depth_and_skips_tasks_and_services() -> None:
    inner = SupervisorSpec([ChildSpec(id="writer", start=Pid, isolation="process")])
    spec = SupervisorSpec(
        [
            ChildSpec(id="ceo", start=Pid, isolation="process"),
            ChildSpec(id="clerk", start=Pid),  # a task: no process of its own
            ChildSpec(id="memory", start=Pid, isolation="process"),  # a service, not an agent
            ChildSpec(id="team", start=inner),
        ]
    )
    async with Node() as node:
        root = await node.start_supervisor(spec)
        found = dict(await agent_processes(root)())
        children = {str(c.id): c.ref for c in await root.which_children()}
        team = {str(c.id): c.ref for c in await children["team"].which_children()}  # type: ignore[union-attr]
        assert set(found) == {"ceo", "writer"}
        assert found["ceo"] == await children["ceo"].call("pid")  # type: ignore[union-attr]
        assert found["writer"] == await team["writer"].call("pid")  # type: ignore[union-attr]
        assert os.getpid() not in found.values()
