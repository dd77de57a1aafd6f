"""Agents written with other frameworks, as ``entry`` functions a process-isolated agent imports.

Each gets ``{"task": ..., "base_url": ...}`` (the local wire-format server) and uses two tools:
``lookup`` (a read, which holds when the test asks, so it can SIGKILL the agent there) and
``publish`` (effect ``once``: logged with its idempotency key; a reconcile reads the log). Effects
go to a log file per run, so a test counts them across processes.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # the Agents SDK would upload traces

import anthropic
import openai

import beamish

LOG_DIR = Path(tempfile.gettempdir()) / "beamish-byo-test-effects"


def _path(run_id: str, suffix: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) + suffix)


def effects(run_id: str) -> list[str]:
    path = _path(run_id, ".log")
    return path.read_text().splitlines() if path.exists() else []


def hold_file(run_id: str) -> Path:
    return _path(run_id, ".hold")


def holding_file(run_id: str) -> Path:
    return _path(run_id, ".holding")


async def lookup(topic: str) -> str:
    """Look up a fact about a topic."""
    run_id = beamish.current_run().run_id
    hold = hold_file(run_id)
    if hold.exists() and hold.read_text() == f"lookup:{topic}":
        hold.unlink()
        tmp = _path(run_id, ".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(holding_file(run_id))
        while True:  # held until the test kills this process
            await asyncio.sleep(0.01)
    _append(run_id, f"lookup {topic}")
    return f"fact about {topic}"


async def publish(text: str) -> str:
    """Publish text to the world: must never happen twice."""
    run = beamish.current_run()
    _append(run.run_id, f"publish {run.idempotency_key} {text}")
    return f"published {text!r}"


def publish_reconcile(key: str) -> str | None:
    run_id = key.rsplit(":", 1)[0]
    for line in effects(run_id):
        if line.startswith(f"publish {key} "):
            return f"published {line.split(' ', 2)[2]!r} (reconciled)"
    return None


def _append(run_id: str, line: str) -> None:
    with _path(run_id, ".log").open("a") as f:
        f.write(line + "\n")


lookup_step = beamish.step("lookup")(lookup)
publish_step = beamish.step("publish", effect="once", reconcile=publish_reconcile)(publish)
STEPS: dict[str, Any] = {"lookup": lookup_step, "publish": publish_step}

SCHEMAS = {
    "lookup": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
    "publish": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


# -- a plain loop over the openai SDK (streamed) --------------------------------------------------


async def plain_openai(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    client = beamish.durable(openai.AsyncOpenAI(base_url=task["base_url"], api_key="test", max_retries=0))
    tools = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in SCHEMAS.items()]
    messages: list[dict[str, Any]] = [{"role": "user", "content": task["task"]}]
    while True:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=tools,
            stream=True,  # type: ignore[arg-type]
        )
        text, calls = "", {}
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for part in choice.delta.tool_calls or ():
                    slot = calls.setdefault(part.index, {"id": "", "name": "", "args": ""})
                    slot["id"] = part.id or slot["id"]
                    slot["name"] += (part.function.name or "") if part.function else ""
                    slot["args"] += (part.function.arguments or "") if part.function else ""
        if not calls:
            return text
        messages.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["args"]},
                    }
                    for c in calls.values()
                ],
            }
        )
        for c in calls.values():
            result = await STEPS[c["name"]](**json.loads(c["args"]))
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})


# -- a plain loop over the anthropic SDK (streamed) -----------------------------------------------


async def plain_anthropic(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    client = beamish.durable(
        anthropic.AsyncAnthropic(base_url=task["base_url"], api_key="test", max_retries=0)
    )
    tools = [{"name": n, "description": n, "input_schema": p} for n, p in SCHEMAS.items()]
    messages: list[dict[str, Any]] = [{"role": "user", "content": task["task"]}]
    while True:
        async with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=messages,
            tools=tools,  # type: ignore[arg-type]
        ) as stream:
            message = await stream.get_final_message()
        uses = [b for b in message.content if b.type == "tool_use"]
        if not uses:
            return "".join(b.text for b in message.content if b.type == "text")
        messages.append({"role": "assistant", "content": [b.model_dump() for b in message.content]})
        results = []
        for use in uses:
            output = await STEPS[use.name](**use.input)
            results.append({"type": "tool_result", "tool_use_id": use.id, "content": output})
        messages.append({"role": "user", "content": results})


# -- Pydantic AI ----------------------------------------------------------------------------------


def pydantic_agent(base_url: str, **kw: Any) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.toolsets import FunctionToolset

    from beamish.byo.adapters.pydantic_ai import durable_model, journaled

    model = durable_model("gpt-4o-mini", openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0))
    tools = journaled(
        FunctionToolset([lookup, publish]),
        effects={"publish": "once"},
        reconcile={"publish": publish_reconcile},
    )
    return Agent(model, instructions="You run marketing.", toolsets=[tools], **kw)


async def pydantic_ai(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    result = await pydantic_agent(task["base_url"]).run(task["task"])
    return str(result.output)


# -- OpenAI Agents SDK ----------------------------------------------------------------------------


async def openai_agents(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    from agents import Agent, Runner, function_tool, set_tracing_disabled

    from beamish.byo.adapters.openai_agents import durable_model, journaled

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=task["base_url"], api_key="test", max_retries=0)
    agent = Agent(
        name="marketing",
        instructions="You run marketing.",
        model=durable_model("gpt-4o-mini", client),
        tools=[function_tool(lookup), function_tool(publish)],
    )
    durable_agent = journaled(agent, effects={"publish": "once"}, reconcile={"publish": publish_reconcile})
    result = await Runner.run(durable_agent, task["task"])
    return str(result.final_output)


# -- LangGraph: a graph whose model node calls a durable client (no adapter, no checkpointer) --------


class State(TypedDict):
    """The graph's state (module level: LangGraph resolves its annotations by name)."""

    messages: Annotated[list[dict[str, Any]], operator.add]


async def langgraph(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    from langgraph.graph import END, START, StateGraph

    os.environ.setdefault("LANGSMITH_TRACING", "false")
    client = beamish.durable(openai.AsyncOpenAI(base_url=task["base_url"], api_key="test", max_retries=0))
    tools = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in SCHEMAS.items()]

    async def model(state: State) -> dict[str, Any]:
        done = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=state["messages"],  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
        )
        return {"messages": [done.choices[0].message.model_dump(exclude_none=True)]}

    async def act(state: State) -> dict[str, Any]:
        replies = []
        for call in state["messages"][-1]["tool_calls"]:
            function = call["function"]
            output = await STEPS[function["name"]](**json.loads(function["arguments"]))
            replies.append({"role": "tool", "tool_call_id": call["id"], "content": output})
        return {"messages": replies}

    def route(state: State) -> str:
        return "act" if state["messages"][-1].get("tool_calls") else END

    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_node("act", act)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["act", END])
    graph.add_edge("act", "model")
    final = await graph.compile().ainvoke({"messages": [{"role": "user", "content": task["task"]}]})
    return str(final["messages"][-1]["content"])
