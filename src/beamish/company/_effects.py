"""The effect check: the journal's steps against the world's own records of what was really done.

A tool with side effects leaves them in one of three records, and the check reads each:

- ``effect_log``: the effect log the company's own tools append to (one JSON line per effect, keyed
  by the call's idempotency key);
- ``versions``: the store's agent versions, which ``propose_upgrade`` records keyed ``propose:<key>``;
- ``memory``: the memory file, whose facts (entities, observations, relations) each write adds or
  removes.

Every disagreement is a :class:`Mismatch` of a named kind, and every line that cannot be read is
counted as one, never skipped: a check that silently drops what it cannot read vouches for nothing.
A side-effect tool that none of the records covers is reported as unchecked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from beamish.memory._schema import MUTATING as MEMORY_WRITES

MismatchKind = Literal[
    "missing_step",  # the world has an effect, the journal has no step for its key
    "unfinished_step",  # the effect happened, its step is still open in a finished run
    "phantom_effect",  # the journal says a step's effect happened; the world never saw it
    "wrong_tool",  # the effect's key is a step of another tool, or a model step
    "duplicate_effect",  # one key applied more than once
    "step_gap",  # a finished run's step numbers skip some
    "unreadable_line",  # a line of the effect log or of the memory file that cannot be read
    "unchecked_tool",  # a side-effect tool that no record covers
]
MISMATCH_KINDS: tuple[MismatchKind, ...] = get_args(MismatchKind)
#: The kinds that mean a step or an effect was lost (the ``lost_steps`` figure).
LOST_KINDS = frozenset({"missing_step", "unfinished_step", "phantom_effect", "wrong_tool", "step_gap"})

World = Literal["effect_log", "versions", "memory"]
#: How ``propose_upgrade`` keys the version it records (``beamish.upgrade``).
PROPOSAL_PREFIX = "propose:"
#: Runs in these statuses are over; an effect whose journal step is still open in one is lost.
FINISHED = frozenset({"succeeded", "failed", "paused", "needs_attention"})
_STATUSES = frozenset({"applied", "deduplicated"})
#: A memory fact: ``("entity", name)``, ``("observation", entity, text)``, ``("relation", from, type, to)``.
Fact = tuple[str, ...]


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the journal and the world (``count`` for one that repeats)."""

    kind: MismatchKind
    detail: str
    count: int = 1


@dataclass(frozen=True)
class Effect:
    """One effect as the world recorded it."""

    key: str
    tool: str
    status: str  # applied | deduplicated
    where: str


@dataclass(frozen=True)
class JournalStep:
    """The part of a journal step the check reads."""

    run_id: str
    seq: int
    kind: str
    phase: str
    name: str
    effect: str | None = None
    idem_key: str | None = None
    args: Any = None
    is_error: bool = False

    @property
    def key(self) -> str:
        return self.idem_key or f"{self.run_id}:{self.seq}"

    @property
    def acknowledged(self) -> bool:
        """A side-effect tool call the journal marks done, and that did not fail."""
        return self.kind == "tool" and self.phase == "done" and not self.is_error


@dataclass
class EffectCheck:
    """The check's outcome: each mismatch, and what was applied and what could not be read."""

    mismatches: list[Mismatch] = field(default_factory=list)
    #: Effects applied, by the record that holds them.
    applied: dict[str, int] = field(default_factory=dict)
    unreadable_lines: dict[str, int] = field(default_factory=dict)

    @property
    def effects_applied(self) -> int:
        return sum(self.applied.values())

    def counts(self) -> dict[str, int]:
        """Mismatches by kind, every kind listed (zero when none)."""
        totals = Counter({kind: 0 for kind in MISMATCH_KINDS})
        for m in self.mismatches:
            totals[m.kind] += m.count
        return {kind: totals[kind] for kind in MISMATCH_KINDS}

    @property
    def lost_steps(self) -> int:
        return sum(m.count for m in self.mismatches if m.kind in LOST_KINDS)

    @property
    def duplicate_effects(self) -> int:
        return sum(m.count for m in self.mismatches if m.kind == "duplicate_effect")

    @property
    def problems(self) -> list[str]:
        return [m.detail for m in self.mismatches]


def guess_world(tool: str) -> World:
    """The record a tool's effects land in, by its name alone (when the company is not known)."""
    if tool in MEMORY_WRITES:
        return "memory"
    return "versions" if tool == "propose_upgrade" else "effect_log"


def world_of(tool: str, module: str) -> World | None:
    """The record a side-effect tool's effects land in, from the module that defines it; ``None``
    for one of beamish's own that no record covers."""
    if tool in MEMORY_WRITES and module == "beamish.company._memory_tools":
        return "memory"
    if tool == "propose_upgrade" and module == "beamish.upgrade._tool":
        return "versions"
    return None if module.startswith("beamish.") else "effect_log"


# -- reading the world ------------------------------------------------------------------------------


def read_effect_log(path: Path) -> tuple[list[Effect], list[Mismatch]]:
    """The effect log's entries, and one ``unreadable_line`` for each line that is not one."""
    if not path.exists():
        return [], []
    effects: list[Effect] = []
    unreadable: list[Mismatch] = []
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        where = f"{path.name} line {number}"
        why = _entry_problem(raw)
        if why is not None:
            unreadable.append(Mismatch("unreadable_line", f"{where}: {why}"))
            continue
        entry = json.loads(raw)
        effects.append(Effect(entry["key"], entry["tool"], entry["status"], where))
    return effects, unreadable


def _entry_problem(raw: bytes) -> str | None:
    try:
        entry = json.loads(raw)
    except ValueError:  # UnicodeDecodeError is one
        return "not JSON (a torn or foreign write)"
    if not isinstance(entry, dict):
        return f"not an object but {type(entry).__name__}"
    for name in ("key", "tool"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            return f"no {name!r}"
    if entry.get("status") not in _STATUSES:
        return f"status {entry.get('status')!r} is neither 'applied' nor 'deduplicated'"
    return None


def version_effects(rows: Iterable[Mapping[str, Any]]) -> list[Effect]:
    """The versions ``propose_upgrade`` recorded (rows of ``agent_versions`` with their ``idem_key``)."""
    return [
        Effect(
            str(r["idem_key"])[len(PROPOSAL_PREFIX) :],
            "propose_upgrade",
            "applied",
            f"version {r['version']} of {r['agent']} by {r['author']}",
        )
        for r in rows
        if str(r.get("idem_key") or "").startswith(PROPOSAL_PREFIX)
    ]


# -- the checks -------------------------------------------------------------------------------------


def check_keyed(
    effects: list[Effect], steps: list[JournalStep], run_status: Mapping[str, str], tools: set[str]
) -> list[Mismatch]:
    """Effects keyed by idempotency key against the steps of ``tools``, both ways."""
    found: list[Mismatch] = []
    by_key = {s.idem_key: s for s in steps if s.idem_key}
    by_seq = {f"{s.run_id}:{s.seq}": s for s in steps}
    applied = Counter(e.key for e in effects if e.status == "applied")
    for key, n in sorted(applied.items()):
        if n > 1:
            found.append(Mismatch("duplicate_effect", f"effect {key} was applied {n} times", n - 1))
    for effect in _distinct(effects):
        found.extend(_effect_against_journal(effect, by_key, by_seq, run_status))
    recorded = {(e.key, e.tool) for e in effects}
    found.extend(
        Mismatch("phantom_effect", f"step {s.key} ({s.name}) is done in the journal but never happened")
        for s in steps
        if s.acknowledged
        and s.name in tools
        and s.effect in ("once", "idempotent")
        and (s.key, s.name) not in recorded
    )
    return found


def _distinct(effects: list[Effect]) -> list[Effect]:
    seen: dict[tuple[str, str], Effect] = {}
    for e in effects:
        seen.setdefault((e.key, e.tool), e)
    return list(seen.values())


def _effect_against_journal(
    effect: Effect,
    by_key: Mapping[str, JournalStep],
    by_seq: Mapping[str, JournalStep],
    run_status: Mapping[str, str],
) -> list[Mismatch]:
    what = f"effect {effect.key} ({effect.tool}, {effect.where})"
    step = by_key.get(effect.key) or by_seq.get(effect.key)
    if step is None:
        return [Mismatch("missing_step", f"{what} happened but the journal has no step for it")]
    if step.idem_key and step.idem_key != effect.key:
        return [
            Mismatch(
                "missing_step", f"{what} happened but the journal's step there has the key {step.idem_key}"
            )
        ]
    if step.kind != "tool":
        return [
            Mismatch("wrong_tool", f"{what} has the key of a {step.kind} step ({step.name or step.kind})")
        ]
    if step.name != effect.tool:
        return [Mismatch("wrong_tool", f"{what} has the key of a step of another tool, {step.name}")]
    if step.phase != "done" and run_status.get(step.run_id) in FINISHED:
        return [
            Mismatch(
                "unfinished_step", f"{what} happened but its step is still {step.phase!r} in a finished run"
            )
        ]
    return []


def check_gaps(steps: list[JournalStep], run_status: Mapping[str, str]) -> list[Mismatch]:
    """A succeeded run's step numbers run without a gap."""
    seqs: dict[str, list[int]] = {}
    for s in steps:
        seqs.setdefault(s.run_id, []).append(s.seq)
    found: list[Mismatch] = []
    for run_id, numbers in sorted(seqs.items()):
        if run_status.get(run_id) != "succeeded":
            continue
        missing = sorted(set(range(min(numbers), max(numbers) + 1)) - set(numbers))
        if missing:
            found.append(Mismatch("step_gap", f"run {run_id} has no steps {missing}", len(missing)))
    return found


def check_coverage(worlds: Mapping[str, World | None]) -> list[Mismatch]:
    """A side-effect tool whose effects no record holds cannot be checked: say so."""
    return [
        Mismatch(
            "unchecked_tool", f"tool {name} has side effects that no record keeps; its steps go unchecked"
        )
        for name, world in sorted(worlds.items())
        if world is None
    ]
