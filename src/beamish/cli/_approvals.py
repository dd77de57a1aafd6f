"""``beamish approvals | approve | deny | answer``: a person's side of the gates.

They work on the store, so whichever node runs the agent picks the run up: a decision queues the
run again and the node's poller wakes its agent.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from beamish.agent._gates import Gate, decide, pending_gates
from beamish.cli._common import ConfigOption, JsonOption, fail, load, with_store
from beamish.cli._output import console, emit_json

NoteOption = Annotated[str | None, typer.Option("--note", help="Why: the model reads it with a denial.")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: the login name); must be an approver.")
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beamish`` app."""
    for command in (approvals, approve, deny, answer):
        app.command()(command)


def _who(by: str | None) -> str:
    return by if by else getpass.getuser()


def describe(gate: Gate) -> str:
    """One line: id, agent, the call (arguments redacted), the cost so far, who may decide, expiry."""
    args = json.dumps(gate.args, sort_keys=True, default=str)
    when = datetime.fromtimestamp(gate.expires_at).strftime("%Y-%m-%d %H:%M")
    who = ", ".join(gate.approvers) or "anyone"
    what = f"{gate.tool}({args})" if gate.kind == "approval" else f"asks: {gate.args.get('question', '')}"
    return (
        f"{gate.gate_id}  {gate.kind:8}  {gate.agent}  run {gate.run_id}  {what}  "
        f"cost so far ${gate.cost_usd:.4f}  decided by {who}  expires {when} ({gate.on_expiry})"
    )


def approvals(
    config: ConfigOption = Path("beamish.toml"),
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pending approvals and questions, oldest first, each with its call."""
    cfg = load(config)
    gates = with_store(cfg, lambda store: pending_gates(store, agent=agent))
    if as_json:
        emit_json([g.to_json() for g in gates])
        return
    if not gates:
        console.print("nothing is waiting for a person")
    for gate in gates:
        console.print(describe(gate))


def _decide(config: Path, gate_id: str, decision: Any, **kwargs: Any) -> Gate:
    cfg = load(config)
    gate: Gate = with_store(cfg, lambda store: decide(store, gate_id, decision, **kwargs))
    return gate


def approve(
    gate_id: Annotated[str, typer.Argument(metavar="ID", help="The approval (from `beamish approvals`).")],
    config: ConfigOption = Path("beamish.toml"),
    note: NoteOption = None,
    by: ByOption = None,
    args: Annotated[
        str | None, typer.Option("--args", help="Approve these arguments instead (a JSON object).")
    ] = None,
) -> None:
    """Approve a gated call (with --args: edit its arguments, then approve); its run resumes."""
    edited = None
    if args is not None:
        try:
            edited = json.loads(args)
        except json.JSONDecodeError as exc:
            raise fail(f'--args: expected a JSON object like \'{{"text": "hi"}}\' ({exc.msg})', 2) from None
        if not isinstance(edited, dict):
            raise fail('--args: expected a JSON object like \'{"text": "hi"}\'', 2)
    decision = "edit" if edited is not None else "approve"
    gate = _decide(config, gate_id, decision, by=_who(by), note=note, args=edited)
    console.print(f"approved {gate.gate_id} ({gate.tool} of run {gate.run_id}) by {gate.decided_by}")


def deny(
    gate_id: Annotated[str, typer.Argument(metavar="ID", help="The approval (from `beamish approvals`).")],
    config: ConfigOption = Path("beamish.toml"),
    note: NoteOption = None,
    by: ByOption = None,
) -> None:
    """Deny a gated call; the model reads "denied by NAME: NOTE" as the tool's result."""
    gate = _decide(config, gate_id, "deny", by=_who(by), note=note)
    console.print(f"denied {gate.gate_id} ({gate.tool} of run {gate.run_id}) by {gate.decided_by}")


def answer(
    gate_id: Annotated[str, typer.Argument(metavar="ID", help="The question (from `beamish approvals`).")],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The answer the agent reads.")],
    config: ConfigOption = Path("beamish.toml"),
    by: ByOption = None,
) -> None:
    """Answer an agent's question (`ask_human`); its run resumes with the answer."""
    gate = _decide(config, gate_id, "answer", by=_who(by), answer=text)
    console.print(f"answered {gate.gate_id} (run {gate.run_id}) as {gate.decided_by}")
