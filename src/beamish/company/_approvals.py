"""The company's approvals API: list the gates waiting for a person, decide them, answer questions.

Any process with the store may decide (the node running the agent picks the run up through its
ordinary wake-up path); on the company the run's agent is also woken at once.
"""

from __future__ import annotations

from typing import Any

from beamish.agent._gates import Gate, decide, get_gate, pending_gates
from beamish.agent._runs import runs_of


class ApprovalsMixin:
    """``approvals``, ``approve``, ``deny``, ``edit`` and ``answer`` on a running company."""

    store: Any
    node: Any

    async def approvals(self, agent: str | None = None) -> list[Gate]:
        """Approvals and questions still pending, oldest first."""
        return await pending_gates(self.store, agent=agent)

    async def gate(self, gate_id: str) -> Gate:
        """One approval or question, decided or not."""
        return await get_gate(self.store, gate_id)

    async def approve(self, gate_id: str, *, by: str, note: str | None = None) -> Gate:
        """Approve a gated call: its run resumes and the call is made."""
        return await self._decided(await decide(self.store, gate_id, "approve", by=by, note=note))

    async def deny(self, gate_id: str, *, by: str, note: str | None = None) -> Gate:
        """Deny a gated call: its run resumes and the model reads ``denied by NAME: NOTE``."""
        return await self._decided(await decide(self.store, gate_id, "deny", by=by, note=note))

    async def edit(self, gate_id: str, args: dict[str, Any], *, by: str, note: str | None = None) -> Gate:
        """Approve a gated call with ``args`` in place of the model's."""
        gate = await decide(self.store, gate_id, "edit", by=by, note=note, args=args)
        return await self._decided(gate)

    async def answer(self, gate_id: str, text: str, *, by: str) -> Gate:
        """Answer an ``ask_human`` question: its run resumes with ``text`` as the tool's result."""
        return await self._decided(await decide(self.store, gate_id, "answer", by=by, answer=text))

    async def _decided(self, gate: Gate) -> Gate:
        if self.node is not None:
            runs_of(self.node).wake(gate.agent)
        return gate
