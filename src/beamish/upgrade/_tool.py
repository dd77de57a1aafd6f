"""``propose_upgrade``: the tool an agent (the Improver) changes another agent with.

Only agents given the tool can call it — the agent loop refuses a tool an agent was not given, so
the allowlist is the agent's ``tools``. The proposal becomes a new *proposed* version in the store,
authored ``agent:<caller>``, keyed by the call's idempotency key (a replayed call proposes nothing
twice); the node rolls it out like any upgrade, with the rollback guard. It may change only
:data:`~beamish.upgrade._upgrader.PROPOSABLE` keys.
"""

from __future__ import annotations

from typing import Any

from beamish._exceptions import SpecError, ToolError
from beamish.agent._tools import ToolContext, tool
from beamish.upgrade._upgrader import PROPOSABLE, apply_changes
from beamish.upgrade._versions import Versions


@tool(effect="idempotent")
async def propose_upgrade(agent: str, changes: dict[str, Any], reason: str, ctx: ToolContext) -> str:
    """Propose a new version of another agent: its instructions, model, tools, budget, watchdog,
    policy or limits. The node rolls it out between the agent's runs and rolls it back by itself if
    the agent then crashes, loops or overspends more than before.

    Args:
        agent: the agent to change, e.g. "lawyer".
        changes: new values by key, e.g. {"instructions": "..."}; budget/watchdog/policy values are
            merged into the current ones, e.g. {"budget": {"per_run_usd": 0.2}}.
        reason: why, in a sentence: kept in the agent's history.
    """
    if ctx.store is None:
        raise ToolError("propose_upgrade needs the agent's journal store")
    if agent == ctx.agent:
        raise ToolError("an agent cannot upgrade itself")
    if not reason.strip():
        raise ToolError("a proposal needs a reason")
    versions = Versions(ctx.store)
    active = await versions.active(agent)
    if active is None:
        raise ToolError(f"no agent named {agent!r} runs a recorded version")
    try:
        definition = apply_changes(active.definition, changes, allowed=PROPOSABLE)
    except SpecError as exc:
        raise ToolError(str(exc)) from exc
    version = await versions.record(
        agent,
        definition,
        author=f"agent:{ctx.agent}",
        reason=reason.strip(),
        state="proposed",
        idem_key=f"propose:{ctx.idempotency_key}",
    )
    return f"proposed version {version.version} of {agent} (replacing version {active.version})"
