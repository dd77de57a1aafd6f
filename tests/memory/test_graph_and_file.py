"""The graph's edge behaviour, the file format, loading that repairs, and reloading on change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamish.errors import MemoryGraphError
from beamish.memory import KnowledgeGraph, Repair, quarantine_path, resolve_memory_path
from beamish.memory._graph import js_json
from beamish.memory._jsonl import _canonical, parse

pytestmark = pytest.mark.timeout(20)


def _entity(name: str, *observations: str, entity_type: str = "t") -> dict[str, object]:
    return {"name": name, "entityType": entity_type, "observations": list(observations)}


async def test_in_batch_duplicates_are_kept_as_the_reference_keeps_them(tmp_path: Path) -> None:
    async with KnowledgeGraph(tmp_path / "m.jsonl") as kg:
        created = await kg.create_entities([_entity("a", "x"), _entity("a", entity_type="u")])
        assert [e["entityType"] for e in created] == ["t", "u"]
        assert await kg.create_entities([_entity("a")]) == []
        added = await kg.add_observations([{"entityName": "a", "contents": ["y", "y", "x"]}])
        assert added == [{"entityName": "a", "addedObservations": ["y", "y"]}]
        graph = await kg.read_graph()
        assert graph["entities"] == [_entity("a", "x", "y", "y"), _entity("a", entity_type="u")]
        await kg.delete_entities(["a"])
        assert (await kg.read_graph())["entities"] == []


async def test_add_observations_is_all_or_nothing(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("a")])
        before = memory.read_bytes()
        with pytest.raises(MemoryGraphError, match=r"^Entity with name nobody not found$"):
            await kg.add_observations(
                [{"entityName": "a", "contents": ["x"]}, {"entityName": "nobody", "contents": []}]
            )
        assert memory.read_bytes() == before
        assert (await kg.open_nodes(["a"]))["entities"] == [_entity("a")]


async def test_relations_are_deduplicated_by_triple_not_checked_and_follow_deleted_entities(
    tmp_path: Path,
) -> None:
    async with KnowledgeGraph(tmp_path / "m.jsonl") as kg:
        rel = {"from": "a", "to": "ghost", "relationType": "knows"}
        assert await kg.create_relations([rel, rel]) == [rel, rel]
        assert await kg.create_relations([rel]) == []
        await kg.create_entities([_entity("a"), _entity("b", "Knows ghosts")])
        other = {"from": "b", "to": "c", "relationType": "r"}
        await kg.create_relations([other])
        found = await kg.search_nodes("GHOST")
        assert [e["name"] for e in found["entities"]] == ["b"]
        assert found["relations"] == [other]
        opened = await kg.open_nodes(["a"])
        assert opened["relations"] == [rel, rel]
        await kg.delete_relations([rel])
        await kg.delete_entities(["b"])
        assert (await kg.read_graph())["relations"] == []


async def test_the_file_is_written_as_the_reference_writes_it(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        await kg.create_relations([{"from": "a", "to": "b", "relationType": "r"}])
        await kg.create_entities([_entity("a", 'quote " and \\ and \n and é and \x01')])
    assert memory.read_text() == (
        '{"type":"entity","name":"a","entityType":"t",'
        '"observations":["quote \\" and \\\\ and \\n and é and \\u0001"]}\n'
        '{"type":"relation","from":"a","to":"b","relationType":"r"}'
    )
    assert js_json("\ud800") == '"\\ud800"'


async def test_bad_python_arguments_raise_the_reference_error(tmp_path: Path) -> None:
    async with KnowledgeGraph(tmp_path / "m.jsonl") as kg:
        with pytest.raises(
            MemoryGraphError, match=r"expected string, received number at entities\[0\]\.name"
        ):
            await kg.call(
                "create_entities", {"entities": [{"name": 1, "entityType": "t", "observations": []}]}
            )
        with pytest.raises(MemoryGraphError, match=r"^MCP error -32602: Tool nope not found$"):
            await kg.call("nope", {})
        assert await kg.call("delete_entities", {"entityNames": []}) == {
            "success": True,
            "message": "Entities deleted successfully",
        }


async def test_loading_repairs_without_losing_anything_and_reports_each_repair(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_bytes(
        b'{"type":"entity","name":"a","entityType":"t","observations":["x"]}\n'
        b"{torn line\n"
        b'{"type":"relation","from":"a","to":"b","relationType":"r"}\n'
        b'{"type":"entity","name":"a","entityType":"t","observations":["x","y"]}\n'
        b'{"type":"entity","name":"a","entityType":"other","observations":["z"]}\n'
        b'{"type":"relation","from":"a","to":"b","relationType":"r"}\n'
        b"null\n"
        b"\xff\xfe\n"
    )
    seen: list[Repair] = []
    async with KnowledgeGraph(memory, on_repair=seen.append) as kg:
        graph = await kg.read_graph()
        assert graph["entities"] == [_entity("a", "x", "y", "z")]
        assert graph["relations"] == [{"from": "a", "to": "b", "relationType": "r"}]
    kinds = [r.kind for r in seen]
    assert kinds == [
        "corrupt_line",
        "duplicate_entity",
        "duplicate_entity",
        "duplicate_relation",
        "invalid_item",
        "corrupt_line",
    ]
    assert [r.line for r in seen] == [2, 4, 5, 6, 7, 8]
    assert all(r.to_event(memory).kind == "memory.repaired" for r in seen)
    err = capfd.readouterr().err
    assert err.count(f"beamish memory: repaired {memory}") == 6
    quarantined = [json.loads(line) for line in quarantine_path(memory).read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [2, 5, 7, 8]
    assert quarantined[0]["raw"] == "{torn line"
    assert "other" in quarantined[1]["raw"]
    assert quarantined[3]["raw_base64"] == "//4="
    # The repaired file is written back, so loading it again repairs nothing.
    again: list[Repair] = []
    async with KnowledgeGraph(memory, on_repair=again.append) as kg:
        await kg.read_graph()
    assert again == []


async def test_the_graph_is_reread_only_when_the_file_changed(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("a")])
        for _ in range(5):
            await kg.search_nodes("a")
        assert kg.loads == 1
        replacement = tmp_path / "other.jsonl"
        replacement.write_text('{"type":"entity","name":"b","entityType":"t","observations":[]}')
        os.replace(replacement, memory)
        assert [e["name"] for e in (await kg.read_graph())["entities"]] == ["b"]
        assert kg.loads == 2
        memory.unlink()
        assert (await kg.read_graph())["entities"] == []


async def test_saves_keep_the_file_mode(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_text("")
    memory.chmod(0o600)
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("a")])
    assert memory.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "m.jsonl.lock"]


def test_memory_file_path_is_resolved_as_the_reference_does(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert resolve_memory_path(env={"MEMORY_FILE_PATH": "/abs/m.jsonl"}, base_dir=tmp_path) == Path(
        "/abs/m.jsonl"
    )
    assert (
        resolve_memory_path(env={"MEMORY_FILE_PATH": "rel/m.jsonl"}, base_dir=tmp_path)
        == tmp_path / "rel/m.jsonl"
    )
    assert resolve_memory_path(env={}, base_dir=tmp_path) == tmp_path / "memory.jsonl"
    (tmp_path / "memory.json").write_text("legacy")
    assert resolve_memory_path(env={}, base_dir=tmp_path) == tmp_path / "memory.jsonl"
    assert (tmp_path / "memory.jsonl").read_text() == "legacy"
    assert not (tmp_path / "memory.json").exists()
    assert "migrating to memory.jsonl" in capfd.readouterr().err
    (tmp_path / "memory.json").write_text("older")
    assert resolve_memory_path(env={}, base_dir=tmp_path) == tmp_path / "memory.jsonl"
    assert (tmp_path / "memory.json").read_text() == "older"
    assert resolve_memory_path(tmp_path / "x.jsonl", env={"MEMORY_FILE_PATH": "/abs"}) == tmp_path / "x.jsonl"


async def test_a_file_system_error_is_a_memory_graph_error_naming_the_file(tmp_path: Path) -> None:
    memory = tmp_path / "no such dir" / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        with pytest.raises(MemoryGraphError, match="no such dir"):
            await kg.create_entities([_entity("a")])
        # Reading a file that is not there is an empty graph, as in the reference.
        assert await kg.read_graph() == {"entities": [], "relations": []}


async def test_a_rewrite_that_looks_identical_on_stat_is_still_noticed(tmp_path: Path) -> None:
    """Two instances (as two processes would): a commit by one is seen by the other through the
    lock file's commit counter even if inode, size and mtime were all the same."""
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as first, KnowledgeGraph(memory) as second:
        await first.create_entities([_entity("a")])
        assert [e["name"] for e in (await second.read_graph())["entities"]] == ["a"]
        await first.add_observations([{"entityName": "a", "contents": ["x"]}])
        second._identity = first._identity  # pretend stat cannot tell the versions apart
        assert (await second.open_nodes(["a"]))["entities"] == [_entity("a", "x")]


async def test_old_temp_files_of_killed_writers_are_swept_on_reload(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_text('{"type":"entity","name":"a","entityType":"t","observations":[]}')
    old = tmp_path / f"m.jsonl.{'a' * 32}.tmp"
    fresh = tmp_path / f"m.jsonl.{'b' * 32}.tmp"
    for stray in (old, fresh):
        stray.write_text("half a graph")
    os.utime(old, (1_000_000, 1_000_000))
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("b")])
    assert not old.exists()
    assert fresh.exists()  # could be another program's save under way


@settings(max_examples=300, deadline=None, database=None)
@given(
    name=st.text(max_size=6),
    observations=st.lists(st.text(max_size=6), max_size=3),
    variant=st.sampled_from(["canonical", "spaced", "ascii-escaped", "reordered"]),
)
def test_a_line_is_trusted_as_canonical_only_when_it_is_byte_for_byte(
    name: str, observations: list[str], variant: str
) -> None:
    item = {"type": "entity", "name": name, "entityType": "t", "observations": observations}
    text = {
        "canonical": js_json(item),
        "spaced": json.dumps(item, ensure_ascii=False),
        "ascii-escaped": json.dumps(item, separators=(",", ":")),
        "reordered": js_json({"name": name, **item}),
    }[variant]
    parsed = json.loads(text)
    if _canonical(text, parsed):
        assert text == js_json(parsed)
    elif variant == "canonical":
        assert "\\" in text  # only lines with escapes are re-encoded to be sure
    loaded = parse(text.encode())
    assert loaded.graph.encode() == js_json(item).encode()


def test_loading_a_canonical_file_needs_no_re_encoding(tmp_path: Path) -> None:
    lines = [
        js_json({"type": "entity", "name": f"e{i}", "entityType": "t", "observations": ["é", "x y"]})
        for i in range(50)
    ]
    lines.append(js_json({"type": "relation", "from": "e1", "to": "e2", "relationType": "r"}))
    data = "\n".join(lines).encode()
    graph = parse(data).graph
    assert all(e.line is not None for e in graph._entities.values())
    assert graph.encode() == data


async def test_extra_fields_are_kept_in_quarantine_and_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_bytes(
        b"\xef\xbb\xbf"
        b'{"type":"entity","name":"a","entityType":"t","observations":[],"createdAt":"2026-01-01"}\n'
        b'{"type":"entity","name":"b","entityType":"t","observations":[]}'
    )
    seen: list[Repair] = []
    async with KnowledgeGraph(memory, on_repair=seen.append) as kg:
        assert [e["name"] for e in (await kg.read_graph())["entities"]] == ["a", "b"]
    assert [(r.kind, r.line) for r in seen] == [("extra_fields", 1)]
    assert "createdAt" in quarantine_path(memory).read_text()
    assert memory.read_bytes() == (
        b'{"type":"entity","name":"a","entityType":"t","observations":[]}\n'
        b'{"type":"entity","name":"b","entityType":"t","observations":[]}'
    )
