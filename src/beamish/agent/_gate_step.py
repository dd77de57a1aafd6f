"""The loop's side of a gate: stop the run before a gated call, or replay the decision taken.

Deterministic on replay: the decision lives in the gate row of ``(run_id, seq)``, so every later
execution of the run takes the same branch at that step — the approved call (with the edited
arguments, if any) becomes the effect step, a denial or an answer becomes the tool's result. A step
already journaled without a gate stays as it was, whatever the rules say now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from beamish._exceptions import AwaitHuman
from beamish.agent._approval import AskHumanTool, gate_policy, needs_cost
from beamish.agent._gates import Gate, GateKind, gate_at, open_gate
from beamish.agent._messages import ToolCall
from beamish.journal import Run
from beamish.journal._replay import RunJournal, StepResult

Reply = Callable[[str, bool], StepResult]


def is_gated(target: Any, rules: Any, tool: str) -> bool:
    """Whether this call may need a gate (cheap: no store read)."""
    return (
        isinstance(target, AskHumanTool)
        or getattr(target, "approval", None) == "required"
        or any(r.tool == tool for r in rules)
    )


async def pass_gate(
    store: Any,
    rules: Any,
    run: Run,
    journal: RunJournal,
    seq: int,
    call: ToolCall,
    target: Any,
    reply: Reply,
) -> StepResult | ToolCall:
    """A :class:`StepResult` when the gate decided the step's result (denied, answered), the call
    to perform when it was approved; raises :class:`AwaitHuman` while no one has decided."""
    gate = await gate_at(store, run.run_id, seq)
    if gate is None:
        if journal.recorded(seq) is not None:
            return call  # journaled before any gate: replay it as it was
        cost = (await store.get_run(run.run_id)).spend_usd if needs_cost(rules, call.name) else None
        policy = gate_policy(target, rules, call.name, call.arguments, cost)
        if policy is None:
            return call
        kind: GateKind = "question" if isinstance(target, AskHumanTool) else "approval"
        await journal.flush()
        gate = await open_gate(
            store,
            run_id=run.run_id,
            epoch=journal.epoch,
            seq=seq,
            kind=kind,
            tool=call.name,
            args=call.arguments,
            policy=policy,
        )
    if gate.status == "pending":
        raise AwaitHuman(gate.gate_id)
    if gate.kind == "question" or gate.status == "denied":
        return await _decided(journal, seq, call, gate, reply)
    if gate.edited_args is not None:
        return dataclasses.replace(call, arguments=dict(gate.edited_args))
    return call


async def _decided(journal: RunJournal, seq: int, call: ToolCall, gate: Gate, reply: Reply) -> StepResult:
    """The person's word as the tool's result, journaled as the step."""
    if gate.kind == "question":
        text, is_error = str(gate.answer), False
    else:
        text = f"denied by {gate.decided_by}" + (f": {gate.note}" if gate.note else "")
        is_error = True
    result = reply(text, is_error)

    async def give() -> StepResult:
        return result

    request = {"gate": gate.gate_id, "tool": call.name, "status": gate.status}
    return await journal.model_step(seq, request, give, kind="tool", name=call.name)
