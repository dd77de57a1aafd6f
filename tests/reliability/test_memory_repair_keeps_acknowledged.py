"""A corrupt line glued to the last, acknowledged line of the memory file must not take it away.

The reference's format ends the file without a newline, so a foreign writer that appends a torn
line (a crashed ``echo >>``, the demo's fault plan) glues it to the last entity. Loading keeps the
entity the line starts with and moves the whole line, as it was, to quarantine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beamish.memory import KnowledgeGraph, quarantine_path

pytestmark = pytest.mark.timeout(20)


async def test_an_entity_with_a_torn_line_glued_to_it_survives_the_repair(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    async with KnowledgeGraph(path, report_repairs=False) as graph:
        await graph.create_entities(
            [
                {"name": "a", "entityType": "t", "observations": ["first"]},
                {"name": "b", "entityType": "t", "observations": ["acknowledged"]},
            ]
        )
    assert not path.read_bytes().endswith(b"\n")
    with open(path, "ab") as f:
        f.write(b'{"type":"entity","name":"half-written\n')

    async with KnowledgeGraph(path, report_repairs=False) as graph:
        names = {e["name"]: e["observations"] for e in (await graph.read_graph())["entities"]}

    assert names == {"a": ["first"], "b": ["acknowledged"]}
    kept = [json.loads(line) for line in quarantine_path(path).read_text().splitlines()]
    assert len(kept) == 1
    assert kept[0]["raw"].startswith('{"type":"entity","name":"b"') and "half-written" in kept[0]["raw"]


async def test_a_line_of_garbage_alone_is_still_quarantined_whole(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text('{"type":"entity","name":"a","entityType":"t","observations":[]}\nnot json at all')

    async with KnowledgeGraph(path, report_repairs=False) as graph:
        names = [e["name"] for e in (await graph.read_graph())["entities"]]

    assert names == ["a"]
    assert "not json at all" in quarantine_path(path).read_text()


async def test_a_line_nested_deeper_than_json_can_parse_is_quarantined_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    good = '{"type":"entity","name":"a","entityType":"t","observations":["kept"]}'
    path.write_text(good + "\n" + "[" * 100_000 + "]" * 100_000)

    async with KnowledgeGraph(path, report_repairs=False) as graph:
        entities = (await graph.read_graph())["entities"]

    assert entities == [{"name": "a", "entityType": "t", "observations": ["kept"]}]
    assert "recursion" in quarantine_path(path).read_text()
