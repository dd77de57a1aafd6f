"""The knowledge graph in memory, indexed, with the reference server's exact semantics.

The reference keeps the graph as two arrays and scans them on every call; this keeps the same
order and the same edge behaviour (in-batch duplicates are kept, relations are deduplicated by
triple against the stored graph only and never checked for endpoints, ``add_observations`` is
all-or-nothing) while answering lookups from indexes, so a call costs what it touches rather than
what the graph holds. Each entity and relation also caches its encoded JSONL line, so a save
re-encodes only what changed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from beamish._exceptions import MemoryGraphError


class Entity(TypedDict):
    name: str
    entityType: str
    observations: list[str]


Relation = TypedDict("Relation", {"from": str, "to": str, "relationType": str})


class ObservationResult(TypedDict):
    entityName: str
    addedObservations: list[str]


class GraphDict(TypedDict):
    entities: list[Entity]
    relations: list[Relation]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def js_json(value: Any, *, indent: int | None = None) -> str:
    """``JSON.stringify`` as the reference calls it: compact (or indented), non-ASCII kept verbatim,
    lone surrogates escaped (ES2019 well-formed stringify) so the text stays valid UTF-8."""
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent)
    if _LONE_SURROGATE.search(text):
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _append_line(blob: bytearray, line: bytes) -> None:
    if blob:
        blob += b"\n"
    blob += line


class _Entity:
    __slots__ = ("entity_type", "haystack", "line", "name", "observations")

    def __init__(self, name: str, entity_type: str, observations: list[str]) -> None:
        self.name = name
        self.entity_type = entity_type
        self.observations = observations
        self.line: bytes | None = None
        self.haystack: str | None = None

    def touched(self) -> None:
        self.line = None
        self.haystack = None

    def encoded(self) -> bytes:
        if self.line is None:
            self.line = js_json(
                {
                    "type": "entity",
                    "name": self.name,
                    "entityType": self.entity_type,
                    "observations": self.observations,
                }
            ).encode()
        return self.line

    def as_dict(self) -> Entity:
        return {"name": self.name, "entityType": self.entity_type, "observations": list(self.observations)}

    def matches(self, needle: str) -> bool:
        """The reference's test: the lower-cased query is a substring of the lower-cased name, type
        or any observation. One joined haystack answers it; a query holding the separator is
        checked field by field so it cannot match across two fields."""
        if self.haystack is None:
            self.haystack = "\x00".join([self.name, self.entity_type, *self.observations]).lower()
        if needle not in self.haystack:
            return False
        if "\x00" not in needle:
            return True
        return any(needle in f.lower() for f in (self.name, self.entity_type, *self.observations))


class _Relation:
    __slots__ = ("line", "relation_type", "source", "target")

    def __init__(self, source: str, target: str, relation_type: str) -> None:
        self.source = source
        self.target = target
        self.relation_type = relation_type
        self.line: bytes | None = None

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.relation_type)

    def encoded(self) -> bytes:
        if self.line is None:
            self.line = js_json(
                {
                    "type": "relation",
                    "from": self.source,
                    "to": self.target,
                    "relationType": self.relation_type,
                }
            ).encode()
        return self.line

    def as_dict(self) -> Relation:
        return {"from": self.source, "to": self.target, "relationType": self.relation_type}


class Graph:
    """Entities and relations in file order, with indexes by name, by triple and by endpoint.

    Ids come from one counter, so iterating the id-keyed dicts yields insertion order and a
    subset sorted by id is in file order: results come out in the order the reference gives.
    """

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._entities: dict[int, _Entity] = {}
        self._by_name: dict[str, list[int]] = {}
        self._relations: dict[int, _Relation] = {}
        self._by_triple: dict[tuple[str, str, str], list[int]] = {}
        self._by_end: dict[str, set[int]] = {}
        # The encoded sections of the file, kept while changes are appends (a create costs a
        # concatenation, not a re-join of every line); None once something in the middle changed.
        self._entities_blob: bytearray | None = None
        self._relations_blob: bytearray | None = None
        # What the operations since :meth:`begin_changes` did, when they only added: the new
        # entity lines and relation lines (so a save can append them); None once anything else
        # changed (a save must then rewrite the file).
        self._added: tuple[list[bytes], list[bytes]] | None = ([], [])

    # -- building ---------------------------------------------------------------------------------

    def _add_entity(
        self, name: str, entity_type: str, observations: list[str], line: bytes | None
    ) -> _Entity:
        eid = next(self._ids)
        entity = _Entity(name, entity_type, observations)
        entity.line = line
        self._entities[eid] = entity
        self._by_name.setdefault(name, []).append(eid)
        if self._entities_blob is not None:
            _append_line(self._entities_blob, entity.encoded())
        return entity

    def _add_relation(self, source: str, target: str, relation_type: str, line: bytes | None) -> _Relation:
        rid = next(self._ids)
        relation = _Relation(source, target, relation_type)
        relation.line = line
        self._relations[rid] = relation
        if self._relations_blob is not None:
            _append_line(self._relations_blob, relation.encoded())
        self._by_triple.setdefault(relation.triple, []).append(rid)
        self._by_end.setdefault(source, set()).add(rid)
        self._by_end.setdefault(target, set()).add(rid)
        return relation

    def load_entity(self, name: str, entity_type: str, observations: list[str], line: bytes | None) -> None:
        """Append an entity read from a file (``line``: its canonical encoding, if known)."""
        self._add_entity(name, entity_type, observations, line)

    def load_relation(self, source: str, target: str, relation_type: str, line: bytes | None) -> None:
        self._add_relation(source, target, relation_type, line)

    def first(self, name: str) -> _Entity | None:
        ids = self._by_name.get(name)
        return self._entities[ids[0]] if ids else None

    def _rewritten(self) -> None:
        """Something other than an addition changed: the cached sections and the additions log
        no longer describe the file."""
        self._entities_blob = None
        self._added = None

    def _remove_relation(self, rid: int) -> None:
        relation = self._relations.pop(rid)
        self._relations_blob = None
        self._added = None
        ids = self._by_triple[relation.triple]
        ids.remove(rid)
        if not ids:
            del self._by_triple[relation.triple]
        for end in (relation.source, relation.target):
            touching = self._by_end.get(end)
            if touching is not None:
                touching.discard(rid)
                if not touching:
                    del self._by_end[end]

    # -- the nine operations ----------------------------------------------------------------------

    def create_entities(self, entities: Sequence[Entity]) -> list[Entity]:
        fresh = [e for e in entities if e["name"] not in self._by_name]
        for e in fresh:
            entity = self._add_entity(e["name"], e["entityType"], list(e["observations"]), None)
            if self._added is not None:
                self._added[0].append(entity.encoded())
        return [
            {"name": e["name"], "entityType": e["entityType"], "observations": list(e["observations"])}
            for e in fresh
        ]

    def create_relations(self, relations: Sequence[Relation]) -> list[Relation]:
        fresh = [r for r in relations if (r["from"], r["to"], r["relationType"]) not in self._by_triple]
        for r in fresh:
            relation = self._add_relation(r["from"], r["to"], r["relationType"], None)
            if self._added is not None:
                self._added[1].append(relation.encoded())
        return [{"from": r["from"], "to": r["to"], "relationType": r["relationType"]} for r in fresh]

    def add_observations(self, observations: Sequence[dict[str, Any]]) -> list[ObservationResult]:
        for o in observations:
            if o["entityName"] not in self._by_name:
                raise MemoryGraphError(f"Entity with name {o['entityName']} not found")
        results: list[ObservationResult] = []
        for o in observations:
            entity = self.first(o["entityName"])
            assert entity is not None
            present = set(entity.observations)
            added = [c for c in o["contents"] if c not in present]
            entity.observations.extend(added)
            if added:
                entity.touched()
                self._rewritten()
            results.append({"entityName": o["entityName"], "addedObservations": added})
        return results

    def delete_entities(self, names: Iterable[str]) -> None:
        for name in set(names):
            for eid in self._by_name.pop(name, ()):
                del self._entities[eid]
                self._rewritten()
            for rid in sorted(self._by_end.get(name, ())):
                if rid in self._relations:
                    self._remove_relation(rid)

    def delete_observations(self, deletions: Sequence[dict[str, Any]]) -> None:
        for d in deletions:
            entity = self.first(d["entityName"])
            if entity is None:
                continue
            doomed = set(d["observations"])
            kept = [o for o in entity.observations if o not in doomed]
            if len(kept) != len(entity.observations):
                entity.observations = kept
                entity.touched()
                self._rewritten()

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        for r in relations:
            for rid in list(self._by_triple.get((r["from"], r["to"], r["relationType"]), ())):
                self._remove_relation(rid)

    def read_graph(self) -> GraphDict:
        return {
            "entities": [e.as_dict() for e in self._entities.values()],
            "relations": [r.as_dict() for r in self._relations.values()],
        }

    def search_nodes(self, query: str) -> GraphDict:
        needle = query.lower()
        found = [eid for eid, e in self._entities.items() if e.matches(needle)]
        return self._subgraph(found)

    def open_nodes(self, names: Sequence[str]) -> GraphDict:
        wanted = set(names)
        if len(wanted) * 4 < len(self._entities):
            found = sorted(eid for n in wanted for eid in self._by_name.get(n, ()))
        else:
            found = [eid for eid, e in self._entities.items() if e.name in wanted]
        return self._subgraph(found)

    def _subgraph(self, entity_ids: list[int]) -> GraphDict:
        names = {self._entities[eid].name for eid in entity_ids}
        if len(names) * 4 < len(self._relations):
            rids = sorted({rid for n in names for rid in self._by_end.get(n, ())})
            relations = [self._relations[rid] for rid in rids]
        else:
            relations = [r for r in self._relations.values() if r.source in names or r.target in names]
        return {
            "entities": [self._entities[eid].as_dict() for eid in entity_ids],
            "relations": [r.as_dict() for r in relations],
        }

    # -- persistence helpers ----------------------------------------------------------------------

    def absorb(self, other: Graph) -> bool:
        """Add ``other``'s entities and relations after ours, as if its lines followed ours in the
        file, provided that loading the two together would repair nothing (no name or triple in
        both); returns False, changing nothing, otherwise."""
        if any(e.name in self._by_name for e in other._entities.values()):
            return False
        if any(r.triple in self._by_triple for r in other._relations.values()):
            return False
        for e in other._entities.values():
            self._add_entity(e.name, e.entity_type, e.observations, e.line)
        for r in other._relations.values():
            self._add_relation(r.source, r.target, r.relation_type, r.line)
        return True

    def begin_changes(self) -> None:
        """Start logging additions (see :meth:`added`); call before applying a batch of operations."""
        self._added = ([], [])

    def added(self) -> tuple[list[bytes], list[bytes]] | None:
        """The encoded entity and relation lines the operations since :meth:`begin_changes` added,
        or None if they also changed or removed something (then only a rewrite saves them)."""
        return self._added

    def encode(self) -> bytes:
        """The whole file, byte for byte as the reference writes it: entities, then relations, one
        compact JSON object a line, joined by newlines, no trailing newline."""
        return b"".join(self.encode_chunks())

    def encode_chunks(self) -> list[bytes | bytearray]:
        """:meth:`encode` as pieces to write one after the other (no copy of the whole file)."""
        if self._entities_blob is None:
            self._entities_blob = bytearray(b"\n".join([e.encoded() for e in self._entities.values()]))
        if self._relations_blob is None:
            self._relations_blob = bytearray(b"\n".join([r.encoded() for r in self._relations.values()]))
        if self._entities_blob and self._relations_blob:
            return [self._entities_blob, b"\n", self._relations_blob]
        return [self._entities_blob or self._relations_blob]

    @property
    def entity_count(self) -> int:
        return len(self._entities)

    @property
    def relation_count(self) -> int:
        return len(self._relations)

    def has_entity(self, name: str) -> bool:
        return name in self._by_name

    def relations(self) -> list[Relation]:
        return [r.as_dict() for r in self._relations.values()]
