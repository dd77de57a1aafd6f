"""The demo's summary: what happened, read back from the journal and checked against the world.

``mismatches`` (and the ``lost_steps`` and ``duplicate_effects`` they add up to) are not counters
the runtime keeps about itself: they come from comparing the journal with the world's own records of
what was really done (the tools' effect log, the recorded agent versions, the memory file; see
``_effects``), so a journal that lost, repeated or misattributed an effect shows here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish.agent._audit import audit_store
from beamish.company._effects import (
    PROPOSAL_PREFIX,
    EffectCheck,
    Fact,
    JournalStep,
    World,
    check_coverage,
    check_gaps,
    check_keyed,
    guess_world,
    read_effect_log,
    version_effects,
)
from beamish.company._memory_check import check_memory, read_memory_facts
from beamish.memory._schema import MUTATING as MEMORY_WRITES


@dataclass
class Summary:
    """The demo's figures (``--json`` prints :meth:`to_json`)."""

    duration_s: float = 0.0
    runs_total: int = 0
    runs_completed: int = 0
    runs_by_status: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    exit_reasons: dict[str, int] = field(default_factory=dict)
    lost_steps: int = 0
    duplicate_effects: int = 0
    effects_applied: int = 0
    #: Every kind of disagreement between the journal and the world, by kind (zeros included).
    mismatches: dict[str, int] = field(default_factory=dict)
    #: Lines of the world's records that could not be read, by record (each is also a mismatch).
    unreadable_lines: dict[str, int] = field(default_factory=dict)
    llm_calls_made: int = 0
    llm_calls_replayed: int = 0
    tool_calls_replayed: int = 0
    spend_usd: float = 0.0
    #: Money spent past a cap, recomputed from the ledger against every cap (target 0).
    spend_past_cap: float = 0.0
    scheduled_fires: int = 0
    scheduled_success_rate: float | None = None
    faults_injected: dict[str, int] = field(default_factory=dict)
    faults_seen: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    #: Live upgrades made while the company ran (``agent.upgraded``), and how many were rolled back.
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: int = 0
    #: Gated calls decided through the API (``approved``, ``denied``) and still waiting at the end.
    approvals: dict[str, int] = field(default_factory=dict)
    #: Alerts the local sink received (signature checked), by kind.
    alerts_sent: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spend_usd"] = round(self.spend_usd, 6)
        return data

    @property
    def agrees(self) -> bool:
        """The journal and the world agree: no mismatch of any kind."""
        return not any(self.mismatches.values())


@dataclass(frozen=True)
class MemoryRecord:
    """The memory file to check, and the facts it held before the company ran."""

    path: Path
    before: frozenset[Fact] = frozenset()


async def load_journal(store: Any) -> tuple[list[JournalStep], dict[str, str]]:
    """Every run's steps (payloads resolved) and every run's status."""
    runs = await store.fetchall("SELECT run_id, status FROM runs")
    status = {str(r["run_id"]): str(r["status"]) for r in runs}
    steps: list[JournalStep] = []
    for run_id in sorted(status):
        for s in await store.steps(run_id):
            request, response = s.request, s.response
            steps.append(
                JournalStep(
                    run_id=s.run_id,
                    seq=s.seq,
                    kind=s.kind,
                    phase=s.phase,
                    name=s.name,
                    effect=s.effect,
                    idem_key=s.idempotency_key,
                    args=request.get("args") if isinstance(request, dict) else None,
                    is_error=bool(isinstance(response, dict) and response.get("is_error")),
                )
            )
    return steps, status


async def check_store(
    store: Any,
    *,
    effect_log: Path | None,
    memory: MemoryRecord | None = None,
    worlds: Mapping[str, World | None] | None = None,
) -> EffectCheck:
    """Check the journal in ``store`` against every record of the world (see :func:`check_journal`)."""
    steps, status = await load_journal(store)
    return await check_journal(store, steps, status, effect_log=effect_log, memory=memory, worlds=worlds)


async def check_journal(
    store: Any,
    steps: list[JournalStep],
    status: Mapping[str, str],
    *,
    effect_log: Path | None,
    memory: MemoryRecord | None = None,
    worlds: Mapping[str, World | None] | None = None,
) -> EffectCheck:
    """Check ``steps`` against every record of the world.

    ``worlds`` names, per side-effect tool, the record that keeps its effects (``None``: none does);
    without it, each tool the journal has steps of is placed by its name. Memory writes are checked
    only with ``memory``; without it they are reported unchecked.
    """
    placed = dict(worlds or {})
    for s in steps:
        if s.kind == "tool" and s.effect in ("once", "idempotent") and s.name not in placed:
            placed[s.name] = guess_world(s.name)
    if memory is None:
        placed = {name: None if world == "memory" else world for name, world in placed.items()}
    check = EffectCheck(mismatches=check_coverage(placed))
    effects, unreadable = read_effect_log(effect_log) if effect_log is not None else ([], [])
    rows = await store.fetchall(
        "SELECT agent, version, author, idem_key FROM agent_versions WHERE idem_key LIKE ?",
        (PROPOSAL_PREFIX + "%",),
    )
    versions = version_effects(dict(r) for r in rows)
    keyed = {name for name, world in placed.items() if world in ("effect_log", "versions")}
    check.mismatches += unreadable + check_keyed(effects + versions, steps, status, keyed)
    check.unreadable_lines["effect_log"] = len(unreadable)
    check.applied["effect_log"] = sum(1 for e in effects if e.status == "applied")
    check.applied["versions"] = len(versions)
    if memory is not None:
        after, bad = read_memory_facts(memory.path)
        check.mismatches += bad + check_memory(set(memory.before), after, steps)
        check.unreadable_lines["memory"] = len(bad)
        check.applied["memory"] = sum(1 for s in steps if s.acknowledged and s.name in MEMORY_WRITES)
    check.mismatches += check_gaps(steps, status)
    return check


def _reason_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("kind")) if value.get("kind") else None
    if isinstance(value, str) and value:
        try:
            return _reason_kind(json.loads(value))
        except json.JSONDecodeError:
            return value
    kind = getattr(value, "kind", None)
    return str(kind) if kind else None


async def summarize(
    store: Any,
    effect_log: Path,
    *,
    events: list[Event],
    duration_s: float,
    faults_injected: dict[str, int],
    scheduled: tuple[int, float | None] = (0, None),
    memory: MemoryRecord | None = None,
    worlds: Mapping[str, World | None] | None = None,
    caps: tuple[Mapping[str, Any], Any] | None = None,
) -> Summary:
    """Read the journal (runs, steps, ledger) and the demo's events; check the world's records and,
    given ``caps`` (every agent's budget by name, the company's), the spend against every cap."""
    summary = Summary(duration_s=round(duration_s, 2), faults_injected=dict(faults_injected))
    runs = await store.fetchall("SELECT run_id, agent, status, reason FROM runs")
    steps, status = await load_journal(store)
    summary.runs_total = len(runs)
    summary.runs_by_status = dict(Counter(status.values()))
    summary.runs_completed = summary.runs_by_status.get("succeeded", 0)
    summary.llm_calls_made = sum(1 for s in steps if s.kind == "llm" and s.phase == "done")
    exits, counts = _tally_events(summary, events, {(s.run_id, s.seq): s.kind for s in steps})
    for r in runs:
        kind = _reason_kind(r["reason"])
        if kind in ("looping", "over_budget", "hung") and r["status"] != "succeeded":
            exits[f"run:{kind}"] += 1
    summary.exit_reasons = dict(sorted(exits.items()))
    summary.events = dict(sorted(counts.items()))
    check = await check_journal(store, steps, status, effect_log=effect_log, memory=memory, worlds=worlds)
    summary.effects_applied = check.effects_applied
    summary.mismatches, summary.unreadable_lines = check.counts(), dict(check.unreadable_lines)
    summary.lost_steps, summary.duplicate_effects = check.lost_steps, check.duplicate_effects
    summary.problems = check.problems
    summary.spend_usd = float(await store.spend())
    if caps is not None:
        audit = await audit_store(store, *caps)
        summary.spend_past_cap = audit.past_cap_usd
        summary.problems.extend(audit.breaches)
    summary.scheduled_fires, summary.scheduled_success_rate = scheduled
    summary.faults_seen = {
        "sigkill": exits.get("killed", 0),
        "tool_crash": exits.get("crashed", 0),
        "hung_tool": max(exits.get("hung", 0), counts.get("watchdog.hung", 0)),
        "loop": counts.get("loop.detected", 0),
        "over_budget": counts.get("budget.exceeded", 0),
        "rate_limit_429": counts.get("model.rate_limited", 0),
        "corrupt_memory_line": counts.get("memory.repaired", 0),
    }
    return summary


def _tally_events(
    summary: Summary, events: list[Event], kinds: Mapping[tuple[str, int], str]
) -> tuple[Counter[str], Counter[str]]:
    """Exit reasons and event counts; restarts, upgrades and replayed steps go into ``summary``."""
    exits: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    replayed: set[tuple[str, int]] = set()
    for event in events:
        counts[event.kind] += 1
        if event.kind == "child.exited":
            kind = _reason_kind(event.data.get("reason"))
            if kind and kind not in ("normal", "shutdown"):
                exits[kind] += 1
        elif event.kind == "child.restarted":
            summary.restarts += 1
        elif event.kind == "agent.upgraded":
            keep = ("agent", "version", "previous", "author", "reason", "changed")
            summary.upgrades.append({k: event.data.get(k) for k in keep})
        elif event.kind == "agent.rolled_back":
            summary.rollbacks += 1
        elif event.kind == "step.replayed":
            run_id = str(event.data.get("run_id", event.subject))
            lo, hi = int(event.data.get("from_seq", 0)), int(event.data.get("to_seq", -1))
            replayed.update((run_id, seq) for seq in range(lo, hi + 1))
    for key in replayed:
        kind = kinds.get(key)
        if kind == "llm":
            summary.llm_calls_replayed += 1
        elif kind == "tool":
            summary.tool_calls_replayed += 1
    return exits, counts
