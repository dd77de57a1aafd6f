"""A replay that asks something different is reported and continues live; the loop drives the real
OpenAI SDK end to end against a local server speaking Chat Completions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beamish import AgentSpec
from beamish.agent._runs import runs_of
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from . import fixture_tools as ft
from ._scripts import call, calls_made, write_script
from ._wire import Reply, WireServer, openai_stream

pytestmark = pytest.mark.timeout(30)


async def test_a_replay_with_changed_instructions_is_reported_and_continues_live(tmp_path: Path) -> None:
    script = write_script(tmp_path, "s", [{"tool_calls": [call("lookup", topic="a")]}, {"text": "done"}])
    url = f"sqlite:///{tmp_path}/j.db"
    for instructions in ("Version one.", "Version two."):
        spec = AgentSpec("ops", instructions, f"scripted:{script}", [ft.lookup], isolation="task")
        async with Node(store=url) as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            if instructions == "Version one.":
                await node.submit("ops", "go", run_id="r1")
            else:
                async with await open_store(url) as store:
                    await store.update_run("r1", status="queued")
                runs_of(node).wake("ops")
            result = await node.result("r1", timeout=10)
        assert result.status == "succeeded"
    async with await open_store(url) as store:
        (event,) = [e for _, e in await store.events(kinds=["step.divergence"], subject="r1")]
    assert event.data["seq"] == 0
    assert any(d.startswith("system:") for d in event.data["differs"])
    assert len(calls_made(script)) == 4, "after the divergence the run continued live"
    assert result.replayed_calls == 0


async def test_an_agent_on_the_openai_sdk_calls_tools_and_answers_through_a_local_server(
    tmp_path: Path,
) -> None:
    async with WireServer() as server:
        server.queue(
            Reply(events=openai_stream("", [("call_1", "lookup", '{"topic": "rates"}')])),
            Reply(events=openai_stream("Rates are: fact about rates.")),
        )
        spec = AgentSpec(
            "analyst",
            "Answer with facts.",
            "openai:local-model",
            [ft.lookup],
            isolation="task",
            model_options={"base_url": f"{server.url}/v1", "api_key": "none"},
        )
        async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            result = await node.result(await node.submit("analyst", "What rates?"), timeout=10)
    assert result.status == "succeeded"
    assert result.output == "Rates are: fact about rates."
    second = server.requests[1].body
    assert second["messages"][0] == {"role": "system", "content": "Answer with facts."}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "fact about rates"}
    assert json.loads(second["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"topic": "rates"}
