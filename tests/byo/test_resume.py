"""The agents issue's resume test, passed by agents written with other frameworks.

Each agent runs in its own process (``AgentSpec(entry=...)``) against a local server speaking the
provider's wire format; the test SIGKILLs the process while a tool holds, its supervisor starts a
new one, and the run finishes. The server counts model requests (none may come twice) and the
tools log their effects (the ``once`` publish must appear once, with its idempotency key).
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from agent._wire import WireServer
from beamish import AgentSpec
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import wait_for

from . import fixture_agents as fa
from ._replies import Turn, replies

pytestmark = pytest.mark.timeout(60)

TURNS: list[Turn] = [
    ("call_1", "lookup", {"topic": "market"}),
    ("call_2", "publish", {"text": "launch day"}),
    ("call_3", "lookup", {"topic": "hold-here"}),
    "Done: launch day published.",
]

AGENTS = {
    # entry function: (wire format the server answers in, model the agent is priced by)
    "plain_openai": ("openai-stream", "openai:gpt-4o-mini"),
    "plain_anthropic": ("anthropic-stream", "anthropic:claude-sonnet-4-5"),
    "pydantic_ai": ("openai-json", "openai:gpt-4o-mini"),
    "openai_agents": ("openai-json", "openai:gpt-4o-mini"),
    "langgraph": ("openai-json", "openai:gpt-4o-mini"),
}


# every agent on SQLite; PostgreSQL once (the journal is the same code; each case costs a process
# start importing its framework)
CASES = [(entry, "sqlite") for entry in AGENTS] + [("plain_openai", "postgres")]


@pytest.mark.parametrize(("entry", "backend"), CASES)
async def test_a_sigkilled_framework_agent_resumes_without_repeating_a_request_or_an_effect(
    request: pytest.FixtureRequest, tmp_path: Path, entry: str, backend: str
) -> None:
    store_url = f"sqlite:///{tmp_path}/j.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    fmt, model = AGENTS[entry]
    run_id = f"{entry}-{uuid.uuid4().hex}"
    fa.hold_file(run_id).write_text("lookup:hold-here")
    spec = AgentSpec(name="marketing", instructions="", model=model, entry=f"byo.fixture_agents:{entry}")
    async with WireServer() as server:
        server.queue(*replies(fmt, TURNS))
        async with Node(store=store_url) as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()], intensity=3, period=30))
            await node.submit("marketing", {"task": "Q3 launch", "base_url": server.url}, run_id=run_id)
            holding = fa.holding_file(run_id)
            await wait_for(holding.exists, timeout=30, what="the agent to reach the held tool")
            pid = int(holding.read_text())
            assert pid != os.getpid(), "the agent runs in its own process"
            assert len(server.requests) == 3
            os.kill(pid, signal.SIGKILL)
            result = await node.result(run_id, timeout=30)

    assert result.status == "succeeded", result
    assert result.output == "Done: launch day published."
    assert len(server.requests) == 4, "no model request was sent twice"
    assert (result.model_calls, result.replayed_calls) == (4, 3)
    assert fa.effects(run_id) == ["lookup market", f"publish {run_id}:3 launch day", "lookup hold-here"]
