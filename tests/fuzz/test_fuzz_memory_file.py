"""Fuzzing the memory file's loader: any bytes load; valid items are all kept; bad lines are named.

Files are built from valid entity and relation lines mixed with garbage (random bytes, other JSON,
deep nesting, huge strings, invalid UTF-8, torn lines glued to good ones). Loading never raises;
every valid item is in the graph (duplicates merged); every line that cannot be used is reported
with its line number and kept in quarantine; and the saved form loads back clean and identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamish.memory import KnowledgeGraph, quarantine_path
from beamish.memory._jsonl import parse

pytestmark = pytest.mark.timeout(90)

names = st.text(min_size=1, max_size=12)
entities = st.builds(
    lambda n, t, o: {"type": "entity", "name": n, "entityType": t, "observations": o},
    names,
    st.text(max_size=8),
    st.lists(st.text(max_size=30), max_size=4),
)
relations = st.builds(
    lambda a, b, r: {"type": "relation", "from": a, "to": b, "relationType": r},
    names,
    names,
    st.text(max_size=8),
)
valid = st.one_of(entities, relations)
garbage = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.recursive(st.integers() | st.text(max_size=10), lambda x: st.lists(x, max_size=3), max_leaves=8).map(
        lambda v: json.dumps(v).encode()
    ),
    st.integers(min_value=50, max_value=5000).map(lambda d: b"[" * d + b"]" * d),  # deep nesting
    st.integers(min_value=10_000, max_value=200_000).map(lambda n: b'{"type":"entity","name":"' + b"x" * n),
    st.sampled_from(
        [b'{"type":"entity"}', b'{"type":"relation","from":1}', b'{"type":"alien"}', b"\xff\xfe"]
    ),
    entities.map(lambda e: {**e, "observations": "not a list"}).map(lambda e: json.dumps(e).encode()),
)
Line = tuple[str, object]
lines = st.lists(st.one_of(valid.map(lambda v: ("ok", v)), garbage.map(lambda g: ("bad", g))), max_size=25)


def _blank(raw: object) -> bool:
    """A line the loader skips as empty (any Unicode whitespace, as ``str.isspace`` has it)."""
    try:
        text = raw.decode()  # type: ignore[attr-defined]
    except UnicodeDecodeError:
        return False
    return not text or bool(text.isspace())


def _encode(items: list[Line]) -> bytes:
    out = []
    for kind, item in items:
        out.append(json.dumps(item, ensure_ascii=False).encode() if kind == "ok" else item)  # type: ignore[arg-type]
    return b"\n".join(out)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=lines)
def test_any_file_loads_keeping_every_valid_item_and_naming_every_bad_line(items: list[Line]) -> None:
    loaded = parse(_encode(items))
    graph = loaded.graph.read_graph()
    kept = {e["name"]: set(e["observations"]) for e in graph["entities"]}
    triples = {(r["from"], r["to"], r["relationType"]) for r in graph["relations"]}
    for kind, item in items:
        if kind != "ok":
            continue
        assert isinstance(item, dict)
        if item["type"] == "entity":
            assert set(item["observations"]) <= kept[item["name"]]
        else:
            assert (item["from"], item["to"], item["relationType"]) in triples
    bad_lines = {n for n, (kind, item) in enumerate(items, start=1) if kind == "bad" and not _blank(item)}
    reported = {r.line for r in loaded.repairs}
    assert bad_lines <= reported
    for record in loaded.quarantine:
        assert record["reason"]
    # what is saved loads back clean, as the same graph
    again = parse(loaded.graph.encode())
    assert not again.repairs and again.graph.read_graph() == graph


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=lines)
async def test_the_store_opens_any_file_and_quarantines_what_it_cannot_use(
    tmp_path: Path, items: list[Line]
) -> None:
    path = tmp_path / "memory.jsonl"
    quarantine_path(path).unlink(missing_ok=True)
    path.write_bytes(_encode(items))
    async with KnowledgeGraph(path, report_repairs=False) as graph:
        before = await graph.read_graph()
        await graph.create_entities([{"name": "after-repair", "entityType": "t", "observations": ["ok"]}])
    bad = sum(1 for kind, item in items if kind == "bad" and not _blank(item))
    if bad:
        assert quarantine_path(path).exists()
    async with KnowledgeGraph(path, report_repairs=False) as graph:
        after = await graph.read_graph()
    assert {e["name"] for e in before["entities"]} | {"after-repair"} == {
        e["name"] for e in after["entities"]
    }
