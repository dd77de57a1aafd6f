"""Creates are appended to the file (a cost independent of the graph's size), and the file goes
back to the reference's layout once the out-of-place tail is too big, when idle, and on close."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from beamish.memory import KnowledgeGraph, quarantine_path
from beamish.memory._append import PAGE, FileMoved, append_durably, tail_size
from beamish.memory._jsonl import identity, parse
from beamish.testing import wait_for

from .conftest import mcp_session, reference_command

pytestmark = pytest.mark.timeout(30)

RELATION = {"from": "a", "to": "b", "relationType": "knows"}
RELATION_LINE = b'{"type":"relation","from":"a","to":"b","relationType":"knows"}'


def _entity(name: str, *observations: str) -> dict[str, object]:
    return {"name": name, "entityType": "t", "observations": list(observations)}


def _line(name: str, *observations: str) -> bytes:
    quoted = ",".join(f'"{o}"' for o in observations)
    return f'{{"type":"entity","name":"{name}","entityType":"t","observations":[{quoted}]}}'.encode()


async def test_a_create_appends_its_lines_and_leaves_the_earlier_bytes_alone(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("a", "x")])  # creates the file: a rewrite
        inode = memory.stat().st_ino
        await kg.create_entities([_entity("b"), _entity("c")])
        await kg.create_relations([RELATION])
        assert memory.read_bytes() == b"\n".join([_line("a", "x"), _line("b"), _line("c"), RELATION_LINE])
        assert memory.stat().st_ino == inode  # appended in place, not replaced
        assert (kg.commits, kg.appends, kg.compactions) == (3, 2, 0)


async def test_entities_appended_after_relations_load_the_same_and_are_compacted_on_close(
    tmp_path: Path,
) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory, compact_idle_s=None) as kg:
        await kg.create_relations([RELATION])
        await kg.create_entities([_entity("a")])
        await kg.create_entities([_entity("b", "y")])
        assert kg.appends == 2
        on_disk = memory.read_bytes()
        assert on_disk.endswith(b"\n" + _line("a") + b"\n" + _line("b", "y"))
        assert tail_size(on_disk, parse(on_disk).graph.encode()) == len(_line("a")) + len(_line("b", "y")) + 2
        loaded = parse(on_disk)
        assert loaded.repairs == []
        assert loaded.graph.read_graph() == await kg.read_graph()
    assert memory.read_bytes() == b"\n".join([_line("a"), _line("b", "y"), RELATION_LINE])


async def test_an_idle_store_compacts_its_tail_to_the_reference_layout(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory, compact_idle_s=0.01) as kg:
        await kg.create_relations([RELATION])
        await kg.create_entities([_entity("a")])
        await wait_for(lambda: kg.compactions == 1, what="the idle compaction")
        assert memory.read_bytes() == parse(memory.read_bytes()).graph.encode()
        assert memory.read_bytes().startswith(_line("a") + b"\n")


async def test_a_tail_past_its_bound_is_compacted_while_writing(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory, compact_idle_s=None, compact_tail_bytes=300) as kg:
        await kg.create_relations([RELATION])
        for i in range(40):
            await kg.create_entities([_entity(f"e{i:02}", "some observation")])
            data = memory.read_bytes()
            # the out-of-place tail never exceeds its bound: 300 bytes or a quarter of the file
            assert tail_size(data, parse(data).graph.encode()) <= max(300, len(data) // 4)
        assert kg.appends > 30
        assert kg.commits - kg.appends >= 5  # the rewrites that compacted
    assert [e["name"] for e in parse(memory.read_bytes()).graph.read_graph()["entities"]] == [
        f"e{i:02}" for i in range(40)
    ]


async def test_changes_that_are_not_additions_rewrite_the_file_canonically(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory, compact_idle_s=None) as kg:
        await kg.create_relations([RELATION])
        await kg.create_entities([_entity("a")])
        appends = kg.appends
        await kg.add_observations([{"entityName": "a", "contents": ["z"]}])
        assert kg.appends == appends
        assert memory.read_bytes() == b"\n".join([_line("a", "z"), RELATION_LINE])
        await kg.delete_entities(["nobody"])  # changes nothing: nothing to write
        assert kg.commits == 3


async def test_another_writer_sees_appended_lines_and_appends_after_them(tmp_path: Path) -> None:
    """Two instances on one file, as two processes would be: each append changes the size, so the
    other reloads before its own write, under the lock."""
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as first, KnowledgeGraph(memory) as second:
        await first.create_entities([_entity("a")])
        await second.create_entities([_entity("b")])
        await first.create_entities([_entity("c")])
        assert [e["name"] for e in (await second.read_graph())["entities"]] == ["a", "b", "c"]
        assert first.appends == 1 and second.appends == 1
        # each took in the other's append by reading only the appended bytes
        assert (first.loads, first.tail_loads, second.loads, second.tail_loads) == (1, 1, 1, 1)
    assert memory.read_bytes() == b"\n".join([_line("a"), _line("b"), _line("c")])


async def test_only_a_chain_of_appends_by_our_writers_is_read_as_a_tail(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as first, KnowledgeGraph(memory) as second:
        await first.create_relations([RELATION])
        await first.create_entities([_entity("a")])
        await first.create_entities([_entity("b")])
        assert [e["name"] for e in (await second.read_graph())["entities"]] == ["a", "b"]
        assert (second.loads, second.tail_loads) == (1, 0)  # it held nothing yet
        await first.create_entities([_entity("c")])
        await first.create_relations([{"from": "c", "to": "a", "relationType": "r"}])
        assert len((await second.read_graph())["relations"]) == 2
        assert (second.loads, second.tail_loads) == (1, 1)  # two appends, one read of their bytes
        await first.add_observations([{"entityName": "a", "contents": ["x"]}])  # a rewrite
        assert (await second.open_nodes(["a"]))["entities"] == [_entity("a", "x")]
        assert (second.loads, second.tail_loads) == (2, 1)
        with open(memory, "ab") as f:  # a writer outside the lock appends
            f.write(b"\n" + _line("z"))
        assert [e["name"] for e in (await second.read_graph())["entities"]] == ["a", "b", "c", "z"]
        assert second.loads == 3
        await first.create_entities([_entity("d")])  # appends after the outside write
        assert [e["name"] for e in (await second.read_graph())["entities"]] == ["a", "b", "c", "z", "d"]
        assert second.loads == 4  # the outside write broke the chain: read all
        await first.create_entities([_entity("e"), _entity("e", "twice")])  # in-batch duplicate
        await second.create_entities([_entity("f")])
        # loading the appended duplicate needs a merge: read everything, as a full load would
        names = [e["name"] for e in (await second.read_graph())["entities"]]
        assert names == ["a", "b", "c", "z", "d", "e", "f"]
        assert [r.kind for r in second.repairs] == ["duplicate_entity"]


async def test_a_torn_append_is_quarantined_and_the_acknowledged_lines_kept(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory) as kg:
        await kg.create_entities([_entity("a")])
        await kg.create_entities([_entity("b")])
    with open(memory, "ab") as f:  # what a writer killed inside its append leaves
        f.write(b'\n{"type":"entity","name":"c","entit')
    async with KnowledgeGraph(memory, report_repairs=False) as kg:
        await kg.create_entities([_entity("d")])
        assert [r.kind for r in kg.repairs] == ["corrupt_line"]
        assert [e["name"] for e in (await kg.read_graph())["entities"]] == ["a", "b", "d"]
    assert '"name\\":\\"c\\",\\"entit' in quarantine_path(memory).read_text()
    assert memory.read_bytes() == b"\n".join([_line("a"), _line("b"), _line("d")])


async def test_an_append_that_would_straddle_a_page_starts_on_the_next_one(tmp_path: Path) -> None:
    """A SIGKILL can cut a write only between page-aligned chunks: padding with blank lines puts a
    small append in one chunk, so a cut leaves blank lines, never a torn line."""
    memory = tmp_path / "m.jsonl"
    first = _line("a", "x" * (PAGE - 200))  # ends 135 bytes before the page does
    memory.write_bytes(first)
    async with KnowledgeGraph(memory, compact_idle_s=None) as kg:
        await kg.create_entities([_entity("b", "y" * 100)])
        data = memory.read_bytes()
        assert data == first + b"\n" * (PAGE - len(first)) + b"\n" + _line("b", "y" * 100)
        assert [e["name"] for e in parse(data).graph.read_graph()["entities"]] == ["a", "b"]
        assert parse(data[:PAGE]).repairs == []  # cut after the padding: nothing torn
        assert tail_size(data, parse(data).graph.encode()) == len(data) - len(first)
        await kg.create_entities([_entity("c")])  # fits in the page: no padding
        assert memory.read_bytes() == data + b"\n" + _line("c")
    assert memory.read_bytes() == b"\n".join([first, _line("b", "y" * 100), _line("c")])  # compacted


def test_an_append_refuses_a_file_replaced_since_it_was_read(tmp_path: Path) -> None:
    memory = tmp_path / "m.jsonl"
    memory.write_bytes(_line("a"))
    expected = identity(os.stat(memory))
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(_line("z"))
    os.replace(replacement, memory)
    with pytest.raises(FileMoved):
        append_durably(memory, b"\n" + _line("b"), expected, sync_dir=False)
    assert memory.read_bytes() == _line("z")


async def test_the_reference_server_reads_a_file_with_an_appended_tail(
    reference_js: Path, tmp_path: Path
) -> None:
    memory = tmp_path / "m.jsonl"
    async with KnowledgeGraph(memory, compact_idle_s=None) as kg:
        await kg.create_entities([_entity("a", "x")])
        await kg.create_relations([RELATION, {"from": "b", "to": "a", "relationType": "r"}])
        await kg.create_entities([_entity("b", "y"), _entity("c")])
        expected = await kg.read_graph()
        shutil.copyfile(memory, tmp_path / "copy.jsonl")  # before close compacts it
    copy = tmp_path / "copy.jsonl"
    assert tail_size(copy.read_bytes(), memory.read_bytes()) > 0
    async with mcp_session(reference_command(reference_js), copy) as session:
        result = await session.call_tool("read_graph", {})
        assert result.structured_content == expected
        await session.call_tool("create_entities", {"entities": [_entity("d")]})
    relations = memory.read_bytes().split(b"\n")[3:]
    # the reference's own save puts everything in its layout, as our compaction did
    entities = [_line("a", "x"), _line("b", "y"), _line("c"), _line("d")]
    assert copy.read_bytes() == b"\n".join([*entities, *relations])
    assert len(relations) == 2
