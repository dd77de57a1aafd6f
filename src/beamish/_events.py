"""Lifecycle events: every fact worth seeing later (started, exited, restarted, paused …).

One record type for every layer, so the node, the journal's ``events`` table, the CLI, the dashboard
and telemetry all speak the same shape. ``data`` holds JSON-safe values only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

_VERSION = 1

#: The event kinds beamish emits; layers add theirs here so consumers can enumerate them.
KINDS = frozenset(
    {
        # runtime
        "actor.started",
        "actor.exited",
        "child.started",
        "child.exited",
        "child.restarted",
        "child.restart_delayed",
        "supervisor.escalated",
        "supervisor.auto_shutdown",
        "node.loop_blocked",
        # the store (its database restarted, its disk was full)
        "store.unavailable",
        "store.recovered",
        # agents and runs
        "run.submitted",
        "run.started",
        "run.finished",
        "run.paused",
        "run.resumed",
        "run.needs_attention",
        "run.overdue",
        "run.refused",
        "run.cancelled",
        "step.replayed",
        "step.reconciled",
        "step.divergence",
        "agent.paused",
        "agent.resumed",
        "agent.unprotected",
        "budget.warning",
        "budget.exceeded",
        "budget.overshoot",
        "loop.nudged",
        "loop.detected",
        "watchdog.hung",
        "watchdog.cap_reached",
        "model.rate_limited",
        "model.fallback",
        "breaker.opened",
        "breaker.closed",
        "approval.requested",
        "approval.decided",
        "approval.escalated",
        "question.asked",
        "question.answered",
        # schedules, memory, cluster, upgrades
        "schedule.fired",
        "schedule.missed",
        "memory.repaired",
        "lease.acquired",
        "lease.lost",
        "lease.released",
        "cluster.node_joined",
        "cluster.draining",
        "cluster.drained",
        "agent.upgraded",
        "agent.rolled_back",
        # the company's own bookkeeping
        "events.unstored",
    }
)


@dataclass(frozen=True)
class Event:
    """One lifecycle fact: ``kind`` (from :data:`KINDS`), the ``subject`` it is about (an actor,
    agent, run or schedule name), JSON-safe ``data``, and wall-clock time ``at``."""

    kind: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"v": _VERSION, "kind": self.kind, "subject": self.subject, "data": self.data, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        if data.get("v") != _VERSION:
            raise ValueError(f"unsupported event version {data.get('v')!r}")
        return cls(kind=data["kind"], subject=data["subject"], data=dict(data["data"]), at=float(data["at"]))
