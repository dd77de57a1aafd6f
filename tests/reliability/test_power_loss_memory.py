"""Power loss at every point of the memory file's saves: every image loads, nothing acknowledged is lost.

The real :class:`KnowledgeGraph` performs a sequence of writes (appends, rewrites, deletions, the
compaction on close) with ``os`` of its writer modules replaced by a recorder. The trace is then
replayed on a model of a disk that keeps only what was synced (``_crashfs``), and at every step —
and at every byte offset of data not yet synced — the file a power loss could leave is loaded.
Each load must succeed, hold every fact acknowledged before the crash that the write in flight
did not remove, and nothing that was never written.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beamish.memory import KnowledgeGraph
from beamish.memory._jsonl import parse

from ._crashfs import Recorder, crash_images

pytestmark = pytest.mark.timeout(60)

Fact = tuple[str, ...]
_WRITER_MODULES = ("beamish.memory._jsonl", "beamish.memory._append")


def facts(data: bytes | None) -> frozenset[Fact]:
    if data is None:
        return frozenset()
    graph = parse(data).graph.read_graph()
    out: set[Fact] = set()
    for e in graph["entities"]:
        out.add(("entity", e["name"], e["entityType"]))
        out.update(("obs", e["name"], o) for o in e["observations"])
    out.update(("rel", r["from"], r["to"], r["relationType"]) for r in graph["relations"])
    return frozenset(out)


@contextlib.contextmanager
def recording(directory: Path) -> Iterator[Recorder]:
    recorder = Recorder(directory)
    patched = []
    for name in _WRITER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        patched.append((module, module.os))
        module.os = recorder  # type: ignore[attr-defined]
    try:
        yield recorder
    finally:
        for module, real in patched:
            module.os = real  # type: ignore[attr-defined]


Step = Callable[[KnowledgeGraph], Awaitable[Any]]

STEPS: list[Step] = [
    lambda g: g.create_entities([{"name": "alice", "entityType": "person", "observations": ["likes tea"]}]),
    lambda g: g.create_entities(
        [
            {"name": "bob", "entityType": "person", "observations": ["o1", "o2"]},
            {"name": "acme", "entityType": "company", "observations": []},
        ]
    ),
    lambda g: g.create_relations([{"from": "alice", "to": "acme", "relationType": "works_at"}]),
    lambda g: g.add_observations([{"entityName": "alice", "contents": ["ships on Fridays", "ünïcode ✓"]}]),
    lambda g: g.create_entities([{"name": "carol", "entityType": "person", "observations": ["late"]}]),
    lambda g: g.delete_observations([{"entityName": "bob", "observations": ["o1"]}]),
    lambda g: g.create_relations([{"from": "bob", "to": "acme", "relationType": "owns"}]),
    lambda g: g.delete_entities(["carol"]),
    lambda g: g.create_entities([{"name": "dave", "entityType": "person", "observations": ["x" * 300]}]),
]


async def _record(directory: Path) -> tuple[list[Any], list[tuple[int, frozenset[Fact]]]]:
    """Run the steps on a real store; return the trace and ``(ops at acknowledgement, graph)``."""
    path = directory / "memory.jsonl"
    acks: list[tuple[int, frozenset[Fact]]] = [(0, frozenset())]
    with recording(directory) as recorder:
        graph = KnowledgeGraph(path, report_repairs=False)
        for step in STEPS:
            await step(graph)
            acks.append((len(recorder.ops), facts(path.read_bytes())))
        await graph.aclose()  # may compact the file back to the canonical layout: one more save
        final = facts(path.read_bytes())
        assert final == acks[-1][1]
        acks.append((len(recorder.ops), final))
    return recorder.ops, acks


async def test_every_image_a_power_loss_leaves_loads_with_every_acknowledged_write(tmp_path: Path) -> None:
    ops, acks = await _record(tmp_path)
    kinds = {op.kind for op in ops}
    assert {"write", "fsync", "fsync_dir"} <= kinds  # the trace saw the saves

    cases = 0
    for done, image in crash_images(ops, "memory.jsonl"):
        k = max(i for i, (at, _) in enumerate(acks) if at <= done)
        acknowledged = acks[k][1]
        in_flight = acks[k + 1][1] if k + 1 < len(acks) else acknowledged
        loaded = facts(image)  # must not raise: every image loads (torn lines go to quarantine)
        must = acknowledged & in_flight
        missing = must - loaded
        assert not missing, f"crash after op {done} ({ops[done - 1] if done else 'start'}): lost {missing}"
        invented = loaded - (acknowledged | in_flight)
        assert not invented, f"crash after op {done}: facts never written {invented}"
        cases += 1
    print(f"memory power-loss cases: {cases} images over {len(ops)} recorded operations")
    assert cases >= len(ops)


async def test_a_power_loss_before_the_first_acknowledgement_leaves_no_file_or_an_empty_graph(
    tmp_path: Path,
) -> None:
    ops, acks = await _record(tmp_path)
    first_ack = acks[1][0]
    for done, image in crash_images(ops, "memory.jsonl"):
        if done < first_ack:
            assert facts(image) <= acks[1][1]


async def test_the_recorded_trace_replays_to_the_file_on_disk(tmp_path: Path) -> None:
    ops, _ = await _record(tmp_path)
    last = [image for done, image in crash_images(ops, "memory.jsonl") if done == len(ops)]
    assert (tmp_path / "memory.jsonl").read_bytes() in last
