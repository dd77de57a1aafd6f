"""A Pydantic AI agent, made durable by beamish in a few lines (marked ``# beamish``).

Nothing else about the agent changes: its model requests go through a durable OpenAI client, so
each is a journal step (replayed after a crash, priced, budgeted, watched), and its tools are
journaled by effect, so ``publish`` can never happen twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.toolsets import FunctionToolset

import beamish
from beamish.byo.adapters.pydantic_ai import durable_model, journaled  # beamish


def _log() -> Path:
    return Path(os.environ.get("BYO_DIR", ".")) / "publications.log"


async def research(topic: str) -> str:
    """Find what is worth saying about a topic."""
    return f"{topic}: the launch went well, 120 sign-ups on day one"


async def publish(text: str) -> str:
    """Publish a post to the company blog (never twice)."""
    run = beamish.current_run()  # beamish: its idempotency key names this one publication
    with _log().open("a") as f:
        f.write(f"{run.idempotency_key}\t{os.getpid()}\t{text}\n")
    return "published"


def published(key: str) -> str | None:
    """After a crash between intent and done: did the post with this key go out?"""
    lines = _log().read_text().splitlines() if _log().exists() else []
    return "published" if any(line.startswith(f"{key}\t") for line in lines) else None


async def main(task: dict[str, Any], ctx: beamish.RunContext) -> str:
    """The agent's entry: ``AgentSpec(entry="writer:main")``."""
    client = AsyncOpenAI(base_url=task.get("base_url"), api_key=os.environ.get("OPENAI_API_KEY", "offline"))
    agent = Agent(
        durable_model("gpt-4o-mini", client),  # beamish
        instructions="You write the company's blog. Research, then publish one short post.",
        toolsets=[
            journaled(  # beamish
                FunctionToolset([research, publish]),
                effects={"publish": "once"},
                reconcile={"publish": published},
            )
        ],
    )
    result = await agent.run(task["task"])
    return str(result.output)
