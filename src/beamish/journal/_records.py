"""The journal's records: what a run, a step, a lease, a ledger entry look like when read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from beamish._exits import ExitReason

RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "paused", "needs_attention", "awaiting_approval"
]
RUN_STATUSES: frozenset[str] = frozenset(
    {"queued", "running", "succeeded", "failed", "paused", "needs_attention", "awaiting_approval"}
)
#: Statuses a run never leaves by itself; prune may delete these.
FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})
StepKind = Literal["llm", "tool", "consult", "sleep", "signal", "compact"]
STEP_KINDS: frozenset[str] = frozenset({"llm", "tool", "consult", "sleep", "signal", "compact"})
StepPhase = Literal["intent", "done", "error", "unknown"]
STEP_PHASES: frozenset[str] = frozenset({"intent", "done", "error", "unknown"})
Effect = Literal["read", "idempotent", "once"]
EFFECTS: frozenset[str] = frozenset({"read", "idempotent", "once"})


def step_key(run_id: str, seq: int, generation: int = 0) -> str:
    """The idempotency key of the effect at step ``seq``: ``run_id:seq``, or ``run_id:seq:g`` once
    the run has diverged ``g`` times (the discarded timeline may have used ``run_id:seq`` for another
    request). Defined here once: the journal records it, and the tool, its ``reconcile`` and the
    services behind it are handed the same string."""
    return f"{run_id}:{seq}" if generation == 0 else f"{run_id}:{seq}:{generation}"


@dataclass(frozen=True)
class Run:
    """One task given to an agent. ``run_id`` is also the submitter's idempotency key."""

    run_id: str
    agent: str
    input: Any
    status: str
    output: Any = None
    reason: ExitReason | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    epoch: int = 0
    spend_usd: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Its place in the agent's queue: higher priority first; one run in flight per concurrency key.
    priority: int = 0
    concurrency_key: str | None = None


@dataclass(frozen=True)
class Step:
    """One journaled step of a run: a model call, a tool call, a consult, a sleep or a signal.

    ``messages`` is the delta this step added to the conversation (not the whole conversation).
    ``request`` is what the writer stored: :class:`~beamish.journal.RunJournal` keeps a bounded
    summary of a model request (it repeats the conversation every turn) and a tool's full
    ``{"name", "args"}``; ``request_hash`` always covers the whole request.
    """

    run_id: str
    seq: int
    kind: str
    phase: str
    name: str
    request_hash: str
    request: Any
    response: Any = None
    error: Any = None
    messages: list[Any] | None = None
    effect: str | None = None
    idempotency_key: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    epoch: int = 0
    started_at: float = 0.0
    finished_at: float | None = None


@dataclass(frozen=True)
class Lease:
    """A named lease held by ``owner`` until ``expires_at``; ``epoch`` grows with every new holder."""

    name: str
    owner: str
    epoch: int
    expires_at: float


@dataclass(frozen=True)
class LedgerEntry:
    """Money spent (or reserved, settled, refunded: ``kind``) by an agent, at a wall-clock time."""

    id: int
    at: float
    agent: str
    kind: str
    amount_usd: float
    run_id: str | None = None
    seq: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`Store.prune` deleted."""

    runs: int = 0
    steps: int = 0
    events: int = 0
    payloads: int = 0
