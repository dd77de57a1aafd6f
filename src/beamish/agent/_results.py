"""``RunResult``: how a run ended, as ``node.result(run_id)`` reports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from beamish._exits import ExitReason

RunStatus = Literal["succeeded", "failed", "paused", "needs_attention"]
#: Statuses ``node.result`` waits for (a queued or running run is not over yet).
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "paused", "needs_attention"})


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    ``status``: ``"succeeded"``, ``"failed"``, ``"paused"`` (budget, loop: ``node.resume`` continues
    it) or ``"needs_attention"`` (a ``once`` tool's outcome is unknown). ``output``: the final answer.
    ``reason``: the exit reason when it did not succeed. ``model_calls``: the model calls in the
    run's journal — each made live once, by whichever incarnation of the agent (calls discarded after
    a divergence are not counted); ``replayed_calls``: calls the incarnation that finished the run
    served from the journal instead. ``cost_usd``: spend summed from the journal (discarded steps
    included: their money was spent).
    """

    run_id: str
    agent: str
    status: RunStatus
    output: Any = None
    reason: ExitReason | None = None
    model_calls: int = 0
    replayed_calls: int = 0
    cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"
