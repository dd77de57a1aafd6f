"""What beamish creates on disk is the owner's alone: store, memory and socket files 0600, even
under a permissive umask (journals hold prompts, outputs and spend; memory holds what agents know)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamish.company._control import ControlServer
from beamish.journal import open_store
from beamish.memory import KnowledgeGraph, quarantine_path
from fuzz._sources import SmallCompany

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_store_and_its_wal_are_created_0600(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'beamish.db'}")
    try:
        await store.create_run("agent", {"task": "x"}, run_id="r1")
        files = sorted(tmp_path.iterdir())
        assert {p.name for p in files} >= {"beamish.db", "beamish.db-wal", "beamish.db-shm"}
        for path in files:
            assert mode(path) == 0o600, path.name
    finally:
        await store.close()


async def test_the_memory_file_its_lock_and_its_quarantine_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    async with KnowledgeGraph(path, report_repairs=False) as graph:
        await graph.create_entities([{"name": "a", "entityType": "t", "observations": ["secret plan"]}])
        await graph.add_observations([{"entityName": "a", "contents": ["more"]}])  # a rewrite, too
    with open(path, "ab") as f:
        f.write(b"\ntorn line")
    async with KnowledgeGraph(path, report_repairs=False) as graph:
        await graph.read_graph()
    assert quarantine_path(path).exists()
    for created in tmp_path.iterdir():
        assert mode(created) == 0o600, created.name


async def test_the_control_socket_is_0600(tmp_path: Path) -> None:
    server = ControlServer(SmallCompany(), tmp_path / "node.sock")
    await server.start()
    try:
        assert mode(tmp_path / "node.sock") == 0o600
    finally:
        await server.stop()
