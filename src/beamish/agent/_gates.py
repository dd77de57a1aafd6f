"""Gates: the rows a run waiting for a person holds, and the decisions that release it.

A run that reaches a tool call needing approval (or an ``ask_human`` question) writes one gate row
and sets its own status to ``awaiting_approval`` in the same fenced transaction, then its agent
moves on: the wait holds no process, slot or transaction. A decision updates the gate and queues the
run again in one transaction, so any node's agent picks it up through the ordinary wake-up path
(the registry's poller looks for queued runs), and the replayed run finds the decision in the gate.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from beamish._events import Event
from beamish._exceptions import GateError, SpecError
from beamish._redact import redact_leaves
from beamish.journal._base import check_epoch
from beamish.journal._eventlog import insert_event
from beamish.journal._payload import canonical
from beamish.journal._runs import fetch_run
from beamish.journal._sql import Row, SyncTx

GateKind = Literal["approval", "question"]
Decision = Literal["approve", "deny", "edit", "answer"]
#: Who a decision is recorded as when an expiry applies its policy.
EXPIRY = "expiry"
_COLS = (
    "gate_id, run_id, seq, kind, agent, tool, args, cost_usd, approvers, status, on_expiry, "
    "escalate_to, ttl_s, expires_at, escalated, decided_by, decided_at, note, edited_args, answer, "
    "created_at"
)


@dataclass(frozen=True)
class GatePolicy:
    """Who may decide, how long the gate waits and what its expiry does (``deny`` or ``escalate``)."""

    approvers: tuple[str, ...] = ()
    expires_after_s: float = 86_400.0
    on_expiry: Literal["deny", "escalate"] = "deny"
    escalate_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gate:
    """One approval or question. ``args`` are redacted as everywhere; ``status`` is ``pending``,
    ``approved``, ``denied`` or ``answered``."""

    gate_id: str
    run_id: str
    seq: int
    kind: GateKind
    agent: str
    tool: str
    args: dict[str, Any]
    cost_usd: float
    approvers: tuple[str, ...]
    status: str
    on_expiry: str
    escalate_to: tuple[str, ...]
    ttl_s: float
    expires_at: float
    escalated: bool
    decided_by: str | None
    decided_at: float | None
    note: str | None
    edited_args: dict[str, Any] | None
    answer: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["approvers"], data["escalate_to"] = list(self.approvers), list(self.escalate_to)
        if self.edited_args is not None:
            data["edited_args"] = redact_leaves(self.edited_args)
        return data


def _gate(row: Row) -> Gate:
    edited = row["edited_args"]
    return Gate(
        gate_id=str(row["gate_id"]),
        run_id=str(row["run_id"]),
        seq=int(row["seq"]),
        kind=row["kind"],
        agent=str(row["agent"]),
        tool=str(row["tool"]),
        args=dict(json.loads(row["args"])),
        cost_usd=float(row["cost_usd"]),
        approvers=tuple(json.loads(row["approvers"])),
        status=str(row["status"]),
        on_expiry=str(row["on_expiry"]),
        escalate_to=tuple(json.loads(row["escalate_to"])),
        ttl_s=float(row["ttl_s"]),
        expires_at=float(row["expires_at"]),
        escalated=bool(row["escalated"]),
        decided_by=row["decided_by"],
        decided_at=None if row["decided_at"] is None else float(row["decided_at"]),
        note=row["note"],
        edited_args=None if edited is None else dict(json.loads(edited)),
        answer=row["answer"],
        created_at=float(row["created_at"]),
    )


def _fetch(tx: SyncTx, gate_id: str) -> Gate:
    row = tx.fetchone(f"SELECT {_COLS} FROM gates WHERE gate_id = ?", (gate_id,))
    if row is None:
        raise GateError(f"no approval or question {gate_id!r}; `beamish approvals` lists the pending ones")
    return _gate(row)


async def open_gate(
    store: Any,
    *,
    run_id: str,
    epoch: int,
    seq: int,
    kind: GateKind,
    tool: str,
    args: dict[str, Any],
    policy: GatePolicy,
) -> Gate:
    """Stop the run at step ``seq``: one gate row, the run ``awaiting_approval``, the request event.

    Fenced by the run's epoch, and idempotent on ``(run_id, seq)``: a run that stops here again
    (woken before a decision) finds the gate it opened."""
    now = store.clock.time()
    shown = canonical(redact_leaves(args), "tool arguments")

    def work(tx: SyncTx) -> Gate:
        agent = check_epoch(tx, run_id, epoch)
        found = tx.fetchone(f"SELECT {_COLS} FROM gates WHERE run_id = ? AND seq = ?", (run_id, seq))
        if found is not None and found["status"] != "pending":
            return _gate(found)
        if found is None:
            cost = fetch_run(tx, run_id).spend_usd
            tx.execute(
                f"INSERT INTO gates ({_COLS}) VALUES ({', '.join('?' * 21)})",
                (
                    f"g{uuid.uuid4().hex[:10]}", run_id, seq, kind, agent, tool, shown, cost,
                    json.dumps(list(policy.approvers)), "pending", policy.on_expiry,
                    json.dumps(list(policy.escalate_to)), policy.expires_after_s,
                    now + policy.expires_after_s, 0, None, None, None, None, None, now,
                ),
            )  # fmt: skip
            gate = _gate_at(tx, run_id, seq)
            assert gate is not None
            kind_event = "approval.requested" if kind == "approval" else "question.asked"
            insert_event(tx, Event(kind_event, run_id, gate.to_json(), at=now))
        tx.execute(
            "UPDATE runs SET status = 'awaiting_approval', updated_at = ? WHERE run_id = ?", (now, run_id)
        )
        found_gate = _gate_at(tx, run_id, seq)
        assert found_gate is not None
        return found_gate

    gate: Gate = await store.run(work)
    return gate


def _gate_at(tx: SyncTx, run_id: str, seq: int) -> Gate | None:
    row = tx.fetchone(f"SELECT {_COLS} FROM gates WHERE run_id = ? AND seq = ?", (run_id, seq))
    return None if row is None else _gate(row)


async def gate_at(store: Any, run_id: str, seq: int) -> Gate | None:
    """The gate of step ``seq`` of a run, if it stopped there."""
    found: Gate | None = await store.read(lambda tx: _gate_at(tx, run_id, seq))
    return found


async def get_gate(store: Any, gate_id: str) -> Gate:
    """The gate ``gate_id``, or :class:`~beamish.errors.GateError`."""
    found: Gate = await store.read(lambda tx: _fetch(tx, gate_id))
    return found


async def pending_gates(store: Any, *, agent: str | None = None) -> list[Gate]:
    """Every gate still waiting for a person, oldest first."""
    sql = f"SELECT {_COLS} FROM gates WHERE status = 'pending'"
    params: tuple[Any, ...] = ()
    if agent is not None:
        sql, params = sql + " AND agent = ?", (agent,)
    rows = await store.read(lambda tx: tx.fetchall(sql + " ORDER BY created_at, gate_id", params))
    return [_gate(r) for r in rows]


async def decide(
    store: Any,
    gate_id: str,
    decision: Decision,
    *,
    by: str,
    note: str | None = None,
    args: dict[str, Any] | None = None,
    answer: str | None = None,
) -> Gate:
    """Record a person's decision and queue the run again (one transaction).

    ``approve``/``deny``/``edit`` (approve with ``args`` in place of the model's) take an approval;
    ``answer`` takes a question. Refused with :class:`~beamish.errors.GateError` when the gate is unknown,
    already decided, of the other kind, or ``by`` is not among its approvers."""
    if not isinstance(by, str) or not by.strip():
        raise SpecError("a decision needs the name of who takes it (by='alice')")
    if decision == "edit" and not isinstance(args, dict):
        raise SpecError("an edit needs the arguments to approve instead, as a JSON object")
    if decision == "answer" and not isinstance(answer, str):
        raise SpecError("an answer needs its text")
    now = store.clock.time()
    edited = None if args is None else canonical(args, "edited arguments")
    return await store.run(lambda tx: _decide(tx, gate_id, decision, by, note, edited, answer, now))  # type: ignore[no-any-return]


def _decide(
    tx: SyncTx,
    gate_id: str,
    decision: Decision,
    by: str,
    note: str | None,
    edited: str | None,
    answer: str | None,
    now: float,
) -> Gate:
    gate = _fetch(tx, gate_id)
    want = "question" if decision == "answer" else "approval"
    if gate.kind != want:
        if gate.kind == "question":
            raise GateError(f"{gate_id} is a question, not an approval: answer it with `beamish answer`")
        raise GateError(f"{gate_id} is an approval, not a question: approve or deny it")
    if gate.approvers and by != EXPIRY and by not in gate.approvers:
        raise GateError(f"{by!r} may not decide {gate_id}; its approvers are {', '.join(gate.approvers)}")
    status = {"approve": "approved", "edit": "approved", "deny": "denied", "answer": "answered"}[decision]
    n = tx.execute(
        "UPDATE gates SET status = ?, decided_by = ?, decided_at = ?, note = ?, edited_args = ?, "
        "answer = ? WHERE gate_id = ? AND status = 'pending'",
        (status, by, now, note, edited, answer, gate_id),
    )
    if n == 0:
        raise GateError(f"{gate_id} was already decided ({gate.status} by {gate.decided_by})")
    tx.execute(
        "UPDATE runs SET status = 'queued', updated_at = ? WHERE run_id = ? AND status = 'awaiting_approval'",
        (now, gate.run_id),
    )
    decided = _fetch(tx, gate_id)
    data = {**decided.to_json(), "decision": decision}
    kind = "question.answered" if decision == "answer" else "approval.decided"
    insert_event(tx, Event(kind, gate.run_id, data, at=now))
    return decided


async def expire_due(store: Any) -> list[Gate]:
    """Apply the expiry policy of every pending gate whose time is up: ``escalate`` once (the
    approvers become ``escalate_to`` for another period), else deny. Returns the gates changed."""
    now = store.clock.time()
    result: list[Gate] = await store.run(lambda tx: expire_due_in(tx, now))
    return result


def expire_due_in(tx: SyncTx, now: float) -> list[Gate]:
    """:func:`expire_due` inside the caller's transaction ``tx`` (the node's poller shares one)."""
    rows = tx.fetchall(
        f"SELECT {_COLS} FROM gates WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at",
        (now,),
    )
    changed: list[Gate] = []
    for gate in (_gate(r) for r in rows):
        if gate.on_expiry == "escalate" and not gate.escalated and gate.escalate_to:
            tx.execute(
                "UPDATE gates SET approvers = ?, escalated = 1, expires_at = ? WHERE gate_id = ?",
                (json.dumps(list(gate.escalate_to)), now + gate.ttl_s, gate.gate_id),
            )
            escalated = _fetch(tx, gate.gate_id)
            insert_event(tx, Event("approval.escalated", gate.run_id, escalated.to_json(), at=now))
            changed.append(escalated)
            continue
        what = "approval" if gate.kind == "approval" else "answer"
        note = f"no {what} before the gate expired"
        decision: Decision = "deny" if gate.kind == "approval" else "answer"
        answer = None if gate.kind == "approval" else f"(no answer: {note})"
        changed.append(_decide(tx, gate.gate_id, decision, EXPIRY, note, None, answer, now))
    return changed
