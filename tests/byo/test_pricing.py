"""A framework agent's requests are priced by the model each one names, not by the spec's model.

A durable client may name any model in any request (a cheap model for routing, a dear one for the
answer); the budget must charge each at its own rates, and refuse, before any byte is sent, a
request for a model with no known or configured price.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

import beamish
from agent._wire import WireServer
from beamish import AgentSpec, Budget, Price, RunResult
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

from ._replies import reply

pytestmark = pytest.mark.timeout(30)

#: 100k prompt tokens (a prompt of 120 kB): $0.015 at gpt-4o-mini's price, $0.25 at gpt-4o's.
PROMPT = "hi " * 40_000
TOKENS = {"prompt_tokens": 100_000, "completion_tokens": 0, "total_tokens": 100_000}


async def ask_named_model(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    """An entry agent whose one request names the model the task gives."""
    client = beamish.durable(openai.AsyncOpenAI(base_url=task["base_url"], api_key="test", max_retries=0))
    done = await client.chat.completions.create(
        model=task["model"], messages=[{"role": "user", "content": PROMPT}]
    )
    return str(done.choices[0].message.content)


async def _run(tmp_path: Path, spec_model: str, asks: str, **spec: Any) -> tuple[RunResult, int, list[str]]:
    run_id = f"priced-{uuid.uuid4().hex}"
    agent = AgentSpec(
        name="writer",
        instructions="",
        model=spec_model,
        entry=f"{__name__}:ask_named_model",
        isolation="task",
        **spec,
    )
    url = f"sqlite:///{tmp_path}/j.db"
    async with WireServer() as server:
        server.queue(reply("openai-json", "done", TOKENS))
        async with Node(store=url) as node:
            await node.start_supervisor(SupervisorSpec([agent.child_spec(restart="temporary")]))
            await node.submit("writer", {"base_url": server.url, "model": asks}, run_id=run_id)
            result = await node.result(run_id, timeout=20)
        served = len(server.requests)
    async with await open_store(url) as store:
        kinds = [e.kind for _, e in await store.events() if run_id in (e.subject, e.data.get("run_id"))]
    return result, served, kinds


async def test_a_request_naming_a_cheaper_model_is_charged_at_that_models_rates(tmp_path: Path) -> None:
    result, served, _ = await _run(tmp_path, "openai:gpt-4o", "gpt-4o-mini", budget=Budget(per_run_usd=5))
    assert (result.status, served) == ("succeeded", 1)
    assert result.cost_usd == pytest.approx(0.015)


async def test_a_request_naming_a_model_with_a_configured_price_is_charged_that_price(tmp_path: Path) -> None:
    budget = Budget(prices={"openai:house-llm": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    result, served, _ = await _run(tmp_path, "openai:gpt-4o-mini", "house-llm", budget=budget)
    assert (result.status, served) == ("succeeded", 1)
    assert result.cost_usd == pytest.approx(0.1)


async def test_a_request_naming_a_model_with_no_price_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    result, served, kinds = await _run(
        tmp_path, "openai:gpt-4o-mini", "house-llm", budget=Budget(per_run_usd=5)
    )
    assert served == 0, "a call whose cost cannot be known is never made"
    assert result.status == "failed"
    assert "run.refused" in kinds
    assert "house-llm" in str(result.reason)
