"""Pydantic AI: every tool call of an agent a journal step, every model request through a durable client.

``journaled(toolset, effects={"publish": "once"})`` wraps a Pydantic AI toolset (a
``FunctionToolset`` of the agent's tools, or any other) so each call is a :func:`beamish.step`
with the tool's effect (``"read"`` unless named), replayed from the journal after a crash.
``durable_model("gpt-4o-mini", client)`` is an ``OpenAIChatModel`` over a :func:`beamish.durable`
client. A ``ModelRetry`` a tool raises is journaled as such and raised again on replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_core import to_jsonable_python

from beamish.byo._context import active_run
from beamish.byo._durable import durable
from beamish.byo._step import run_step
from beamish.byo.adapters._common import check_effects

_RETRY = "__pydantic_ai_model_retry__"


@dataclass
class JournaledToolset(WrapperToolset[Any]):
    """A toolset whose calls are steps of the current run (plain calls outside a run)."""

    effects: Mapping[str, str] = field(default_factory=dict)
    reconcile: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        run = active_run()
        if run is None:
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        async def call() -> Any:
            try:
                value = await self.wrapped.call_tool(name, tool_args, ctx, tool)
            except ModelRetry as retry:  # the model is asked again: an outcome, replayed as one
                return {_RETRY: retry.message}
            return to_jsonable_python(value)

        value = await run_step(
            run, name, self.effects.get(name, "read"), tool_args, call, self.reconcile.get(name)
        )
        if isinstance(value, dict) and set(value) == {_RETRY}:
            raise ModelRetry(str(value[_RETRY]))
        return value


def journaled(
    toolset: AbstractToolset[Any],
    effects: Mapping[str, str] | None = None,
    reconcile: Mapping[str, Callable[[str], Any]] | None = None,
) -> JournaledToolset:
    """``toolset`` with each tool call journaled; ``effects`` maps tool names to ``"idempotent"`` or
    ``"once"`` (the rest are ``"read"``), ``reconcile`` a ``once`` tool's name to its reconcile(key)."""
    check_effects(effects, reconcile)
    return JournaledToolset(toolset, effects=dict(effects or {}), reconcile=dict(reconcile or {}))


def durable_model(model: str, client: Any = None) -> Any:
    """An ``OpenAIChatModel`` named ``model`` over ``beamish.durable(client)`` (a new ``AsyncOpenAI``
    reading ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` when ``client`` is None)."""
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    base = client if client is not None else AsyncOpenAI()
    return OpenAIChatModel(model, provider=OpenAIProvider(openai_client=durable(base)))
