"""The gated tool of ``approvals.py`` (a module of its own, so the agent's process imports it by path)."""

from __future__ import annotations

import beamish


@beamish.tool(effect="once", approval="required")
def post(text: str) -> str:
    """Post to social media (after a person's approval)."""
    return f"posted {text!r}"
