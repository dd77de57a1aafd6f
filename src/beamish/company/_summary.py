"""The demo's summary: what happened, read back from the journal and checked against the world.

``lost_steps`` and ``duplicate_effects`` are not counters the runtime keeps about itself: they come
from comparing the journal with the *effect log* the demo's tools append to (the world's record of
what was really done), so a journal that lost or repeated an effect shows here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beamish._events import Event

#: Runs in these statuses are over; an effect whose journal step is still open in one is lost.
_FINISHED = {"succeeded", "failed", "paused", "needs_attention"}


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
    llm_calls_made: int = 0
    llm_calls_replayed: int = 0
    tool_calls_replayed: int = 0
    spend_usd: float = 0.0
    scheduled_fires: int = 0
    scheduled_success_rate: float | None = None
    faults_injected: dict[str, int] = field(default_factory=dict)
    faults_seen: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    #: Live upgrades made while the company ran (``agent.upgraded``), and how many were rolled back.
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spend_usd"] = round(self.spend_usd, 6)
        return data


def read_effect_log(path: Path) -> list[dict[str, Any]]:
    """The effect log's entries; a torn last line (a kill mid-write) is skipped, not fatal."""
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def check_effects(
    effects: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    run_status: dict[str, str],
    logged_tools: set[str] | None = None,
) -> tuple[int, int, list[str]]:
    """``(lost_steps, duplicate_effects, problems)`` from the effect log against the journal's steps.

    Lost: an effect that happened but whose journal step is missing (or still open in a finished
    run); a side-effect step the journal marks done that never happened; a gap in a finished run's
    step numbers. Duplicate: the same idempotency key applied more than once. ``logged_tools`` names
    the tools that keep the effect log (others, such as the memory server's, cannot be checked
    against it); ``None`` means every side-effect tool.
    """
    problems: list[str] = []
    applied = Counter(e["key"] for e in effects if e.get("status") == "applied")
    seen_keys = {e["key"] for e in effects}
    by_key = {f"{s['run_id']}:{s['seq']}": s for s in steps}
    duplicates = sum(n - 1 for n in applied.values() if n > 1)
    for key, n in applied.items():
        if n > 1:
            problems.append(f"effect {key} was applied {n} times")
    lost = 0
    for key in applied:
        step = by_key.get(key)
        run_id = key.rsplit(":", 1)[0]
        if step is None:
            lost += 1
            problems.append(f"effect {key} happened but the journal has no step for it")
        elif step["phase"] != "done" and run_status.get(run_id) in _FINISHED:
            lost += 1
            problems.append(
                f"effect {key} happened but its step is still {step['phase']!r} in a finished run"
            )
    for key, step in by_key.items():
        if (
            step["kind"] == "tool"
            and step.get("effect") in ("once", "idempotent")
            and step["phase"] == "done"
            and (logged_tools is None or step["name"] in logged_tools)
        ) and key not in seen_keys:
            lost += 1
            problems.append(f"step {key} ({step['name']}) is done in the journal but never happened")
    seqs: dict[str, list[int]] = {}
    for s in steps:
        seqs.setdefault(s["run_id"], []).append(int(s["seq"]))
    for run_id, numbers in seqs.items():
        if run_status.get(run_id) != "succeeded":
            continue
        numbers.sort()
        expected = range(numbers[0], numbers[0] + len(numbers))
        if numbers != list(expected):
            missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            lost += len(missing)
            problems.append(f"run {run_id} has no steps {missing}")
    return lost, duplicates, problems


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
    logged_tools: set[str] | None = None,
) -> Summary:
    """Read the journal (runs, steps, ledger) and the demo's events, check the effect log."""
    summary = Summary(duration_s=round(duration_s, 2), faults_injected=dict(faults_injected))
    runs = await store.fetchall("SELECT run_id, agent, status, reason FROM runs")
    status = {str(r["run_id"]): str(r["status"]) for r in runs}
    summary.runs_total = len(runs)
    summary.runs_by_status = dict(Counter(status.values()))
    summary.runs_completed = summary.runs_by_status.get("succeeded", 0)
    steps = [
        dict(r)
        for r in await store.fetchall("SELECT run_id, seq, kind, phase, name, effect, idem_key FROM steps")
    ]
    summary.llm_calls_made = sum(1 for s in steps if s["kind"] == "llm" and s["phase"] == "done")
    kinds = {(s["run_id"], int(s["seq"])): s["kind"] for s in steps}
    exits: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    replayed_seen: set[tuple[str, int]] = set()
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
            for seq in range(lo, hi + 1):
                replayed_seen.add((run_id, seq))
    for key in replayed_seen:
        kind = kinds.get(key)
        if kind == "llm":
            summary.llm_calls_replayed += 1
        elif kind == "tool":
            summary.tool_calls_replayed += 1
    for r in runs:
        kind = _reason_kind(r["reason"])
        if kind in ("looping", "over_budget", "hung") and r["status"] != "succeeded":
            exits[f"run:{kind}"] += 1
    summary.exit_reasons = dict(sorted(exits.items()))
    summary.events = dict(sorted(counts.items()))
    effects = read_effect_log(effect_log)
    summary.effects_applied = sum(1 for e in effects if e.get("status") == "applied")
    lost, dup, problems = check_effects(effects, steps, status, logged_tools)
    summary.lost_steps, summary.duplicate_effects, summary.problems = lost, dup, problems
    summary.spend_usd = float(await store.spend())
    summary.scheduled_fires, summary.scheduled_success_rate = scheduled
    summary.faults_seen = {
        "sigkill": exits.get("killed", 0),
        "hung_tool": max(exits.get("hung", 0), counts.get("watchdog.hung", 0)),
        "loop": counts.get("loop.detected", 0),
        "over_budget": counts.get("budget.exceeded", 0),
        "rate_limit_429": counts.get("model.rate_limited", 0),
        "corrupt_memory_line": counts.get("memory.repaired", 0),
    }
    return summary
