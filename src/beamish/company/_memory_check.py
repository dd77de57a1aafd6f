"""Memory writes checked against the memory file: the world's record of what the agents wrote.

The file keeps no idempotency keys, so the check is by content: each fact (an entity, one of its
observations, a relation) that an acknowledged write added must be in the file, unless a delete
undid it; each fact the file holds that it did not hold before the company ran must have been
written by some step (of any phase: a write interrupted after the server applied it still wrote).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beamish.company._effects import Fact, JournalStep, Mismatch
from beamish.memory._jsonl import parse
from beamish.memory._schema import MUTATING as MEMORY_WRITES


def read_memory_facts(path: Path) -> tuple[set[Fact], list[Mismatch]]:
    """The memory file's facts, and one ``unreadable_line`` for each line its loader would quarantine."""
    if not path.exists():
        return set(), []
    loaded = parse(path.read_bytes())
    facts = graph_facts(loaded.graph.read_graph())
    unreadable = [
        Mismatch("unreadable_line", f"{path.name} line {q.get('line', '?')}: {q.get('reason', 'unreadable')}")
        for q in loaded.quarantine
    ]
    return facts, unreadable


def graph_facts(graph: Mapping[str, Any]) -> set[Fact]:
    """A graph's entities, observations and relations as facts."""
    facts: set[Fact] = set()
    for entity in graph.get("entities", []):
        facts.add(("entity", entity["name"]))
        facts.update(("observation", entity["name"], o) for o in entity.get("observations", []))
    for r in graph.get("relations", []):
        facts.add(("relation", r["from"], r["relationType"], r["to"]))
    return facts


def check_memory(before: set[Fact], after: set[Fact], steps: list[JournalStep]) -> list[Mismatch]:
    """Memory writes against the memory file: each acknowledged write holds in ``after`` (unless a
    later delete undid it), and every fact of ``after`` that ``before`` lacks was written by a step."""
    writes = [s for s in steps if s.kind == "tool" and s.name in MEMORY_WRITES]
    written: set[Fact] = set()
    for s in writes:  # any phase: a write interrupted after the server applied it still wrote
        written |= _adds(s.name, s.args)
    done = [s for s in writes if s.acknowledged]
    removed: set[Fact] = set()
    for s in done:
        removed |= _removes(s.name, s.args)
    gone_entities = {f[1] for f in removed if f[0] == "entity"}
    found: list[Mismatch] = []
    for s in done:
        for fact in sorted(_must_hold(s.name, s.args) - after):
            if fact not in removed and fact[1] not in gone_entities:
                found.append(
                    Mismatch(
                        "phantom_effect", f"step {s.key} ({s.name}) is done but memory has no {_say(fact)}"
                    )
                )
        for fact in sorted(_removes(s.name, s.args) & after - written):
            found.append(
                Mismatch(
                    "phantom_effect", f"step {s.key} ({s.name}) is done but memory still has {_say(fact)}"
                )
            )
    for fact in sorted(after - before - written):
        found.append(Mismatch("missing_step", f"memory holds {_say(fact)} that no journal step wrote"))
    return found


def _say(fact: Fact) -> str:
    if fact[0] == "observation":
        return f"observation {fact[2]!r} on {fact[1]!r}"
    if fact[0] == "relation":
        return f"relation {fact[1]!r} {fact[2]} {fact[3]!r}"
    return f"entity {fact[1]!r}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(args: Any, name: str) -> list[dict[str, Any]]:
    """The objects listed under ``name`` (a write's arguments were validated, but read defensively)."""
    return [
        item for item in _list(args.get(name) if isinstance(args, dict) else None) if isinstance(item, dict)
    ]


def _relations(args: Any) -> set[Fact]:
    return {
        ("relation", str(r.get("from")), str(r.get("relationType")), str(r.get("to")))
        for r in _items(args, "relations")
    }


def _observations(args: Any, name: str, key: str) -> set[Fact]:
    return {
        ("observation", str(item.get("entityName")), str(text))
        for item in _items(args, name)
        for text in _list(item.get(key))
    }


def _adds(tool: str, args: Any) -> set[Fact]:
    """Every fact a write may add (a created entity's observations too)."""
    if tool == "create_entities":
        facts: set[Fact] = set()
        for e in _items(args, "entities"):
            facts.add(("entity", str(e.get("name"))))
            facts.update(("observation", str(e.get("name")), str(o)) for o in _list(e.get("observations")))
        return facts
    if tool == "add_observations":
        return _observations(args, "observations", "contents")
    return _relations(args) if tool == "create_relations" else set()


def _must_hold(tool: str, args: Any) -> set[Fact]:
    """What holds once a write is acknowledged (an existing entity is skipped, not replaced)."""
    if tool == "create_entities":
        return {("entity", str(e.get("name"))) for e in _items(args, "entities")}
    return _adds(tool, args)


def _removes(tool: str, args: Any) -> set[Fact]:
    if tool == "delete_entities":
        names = _list(args.get("entityNames") if isinstance(args, dict) else None)
        return {("entity", str(n)) for n in names}
    if tool == "delete_observations":
        return _observations(args, "deletions", "observations")
    return _relations(args) if tool == "delete_relations" else set()
