"""SIGKILL a writer at random moments, 200 times: the file always loads, every ack is on disk.

The writer is a forked process (multiprocessing forkserver with beamish preloaded, so a trial
costs milliseconds) that keeps several writes in flight and acknowledges each over a pipe once
``KnowledgeGraph`` returned. The test kills it after a random number of acknowledgements.

The file holds a relation, so created entities are appended out of the reference's layout; the
writer's small tail bound makes it compact too. A kill inside an append's ``write`` may leave a
torn last line: never acknowledged, so the only repair allowed is that line going to quarantine.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

import pytest

from beamish.memory import check_file, repair_file
from beamish.memory._append import tail_size
from beamish.memory._jsonl import Repair, parse

from ._crash_writer import write_forever

TRIALS = 200

pytestmark = pytest.mark.timeout(120)


def test_sigkilled_writers_never_lose_an_acknowledged_write(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    memory.write_text(
        '{"type":"entity","name":"counter","entityType":"c","observations":[]}\n'
        '{"type":"relation","from":"counter","to":"counter","relationType":"counts"}'
    )
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["beamish.memory", write_forever.__module__])
    rng = random.Random(7)
    entities: set[str] = set()
    observations: set[str] = set()
    kills_mid_flight = 0
    with_appended_tail = 0
    for trial in range(TRIALS):
        receiver, sender = ctx.Pipe(duplex=False)
        writer = ctx.Process(
            target=write_forever, args=(str(memory), sender, f"t{trial}", rng.choice([1, 4]))
        )
        writer.start()
        sender.close()
        wanted = rng.randint(0, 6)
        acked: list[tuple[str, str]] = []
        while len(acked) < wanted:
            assert receiver.poll(30), f"trial {trial}: the writer stopped acknowledging"
            acked.append(receiver.recv())
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(30)
        assert writer.exitcode == -signal.SIGKILL
        while receiver.poll():
            try:
                acked.append(receiver.recv())  # sent before the kill: acknowledged too
            except EOFError:
                break
        receiver.close()
        kills_mid_flight += wanted > 0
        for kind, name in acked:
            (entities if kind == "entity" else observations).add(name)

        data = memory.read_bytes()
        loaded = parse(data)
        assert _only_a_torn_last_line(loaded.repairs, data), f"trial {trial}: repaired {loaded.repairs}"
        with_appended_tail += tail_size(data, loaded.graph.encode()) > 0
        graph = loaded.graph.read_graph()
        names = {e["name"] for e in graph["entities"]}
        assert entities <= names, f"trial {trial}: lost {sorted(entities - names)}"
        counter = next(e for e in graph["entities"] if e["name"] == "counter")
        assert observations <= set(counter["observations"]), f"trial {trial}: lost observations"
    assert kills_mid_flight > TRIALS * 0.8
    assert with_appended_tail > TRIALS * 0.2, "appends out of place were hardly exercised"
    assert len(entities) + len(observations) > TRIALS
    # Killed writers may leave temp files; the file itself is clean, and repair sweeps them.
    report = repair_file(memory)
    assert _only_a_torn_last_line(report.repairs, data)
    assert check_file(memory).clean


def _only_a_torn_last_line(repairs: list[Repair], data: bytes) -> bool:
    """No repair, or only the last line unreadable: a killed append's unacknowledged part."""
    last = data.count(b"\n") + 1
    return all(r.kind == "corrupt_line" and r.line == last for r in repairs) and len(repairs) <= 1
