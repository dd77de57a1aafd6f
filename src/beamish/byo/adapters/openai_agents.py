"""OpenAI Agents SDK: an agent's function tools as journal steps, its model over a durable client.

``journaled(agent, effects={"publish": "once"})`` returns a clone of the agent whose function tools
are :func:`beamish.step` steps (``"read"`` unless named), replayed from the journal after a crash.
``durable_model("gpt-4o-mini", client)`` is an ``OpenAIChatCompletionsModel`` over a
:func:`beamish.durable` client. The SDK's own tracing uploads spans to OpenAI: turn it off
(``OPENAI_AGENTS_DISABLE_TRACING=1`` or ``agents.set_tracing_disabled(True)``) for offline runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, FunctionTool

from beamish.byo._context import active_run
from beamish.byo._durable import durable
from beamish.byo._step import run_step
from beamish.byo.adapters._common import check_effects
from beamish.journal._payload import canonical


def _jsonable(value: Any) -> Any:
    try:
        canonical(value)
    except (TypeError, ValueError):
        return str(value)  # the SDK sends str() of any other output to the model
    return value


def journaled_tool(
    tool: FunctionTool, effect: str = "read", reconcile: Callable[[str], Any] | None = None
) -> FunctionTool:
    """``tool`` with each invocation a step of the current run (a plain call outside a run)."""
    invoke = tool.on_invoke_tool

    async def on_invoke_tool(context: Any, arguments: str) -> Any:
        run = active_run()
        if run is None:
            return await invoke(context, arguments)
        try:
            args: Any = json.loads(arguments) if arguments else {}
        except ValueError:
            args = arguments

        async def call() -> Any:
            return _jsonable(await invoke(context, arguments))

        return await run_step(run, tool.name, effect, args, call, reconcile)

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)


def journaled(
    agent: Agent[Any],
    effects: Mapping[str, str] | None = None,
    reconcile: Mapping[str, Callable[[str], Any]] | None = None,
) -> Agent[Any]:
    """A clone of ``agent`` with its function tools journaled (other tools, handoffs unchanged)."""
    check_effects(effects, reconcile)
    effects, reconcile = dict(effects or {}), dict(reconcile or {})
    tools = [
        journaled_tool(t, effects.get(t.name, "read"), reconcile.get(t.name))
        if isinstance(t, FunctionTool)
        else t
        for t in agent.tools
    ]
    return agent.clone(tools=tools)


def durable_model(model: str, client: Any = None) -> Any:
    """An ``OpenAIChatCompletionsModel`` named ``model`` over ``beamish.durable(client)``."""
    from agents import OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    base = client if client is not None else AsyncOpenAI()
    return OpenAIChatCompletionsModel(model=model, openai_client=durable(base))
