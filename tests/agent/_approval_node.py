"""A node for the approval crash test (run as a script; not collected by pytest).

``python _approval_node.py STORE_URL RUN_ID SCRIPT``: starts the ``marketing`` agent (its ``post``
tool needs approval) on the store, submits the run, prints ``ready`` and serves until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from tests.agent import fixture_tools as ft

from beamish import AgentSpec
from beamish.runtime import Node, SupervisorSpec


def spec(script: str) -> AgentSpec:
    return AgentSpec("marketing", "You post.", f"scripted:{script}", tools=[ft.post], isolation="task")


async def main(url: str, run_id: str, script: str) -> None:
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec(script).child_spec()]))
        await node.submit("marketing", "launch", run_id=run_id)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
