"""Reads see what other processes committed: no reader keeps an old snapshot.

A reader process (``_visibility_reader.py``) opens the store and reads; this process then stores
runs and events, and the reader's ``get_run``, ``list_runs`` and ``events`` must show each of them
within a bounded wait — for a long-lived store, for one closed and opened again at the same URL (as
an agent did on upgrade), and in a child forked after its parent opened the store (as the zygote's
children are), on SQLite and PostgreSQL alike.

The writer's process opens the URL a second time while its first store stays open, as a node does
(its company, agent registry and in-process agents each open one). Opening a SQLite store once read
the file's header with a plain ``open``; closing that descriptor dropped every POSIX lock the
process held on the file, so the reader closing its last connection deleted the WAL under the
writer's open store, and from then on the two processes committed to different WAL files.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from beamish._events import Event
from beamish.journal import Store, open_store

READER = Path(__file__).with_name("_visibility_reader.py")


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), 15)
    return raw.decode().strip()


async def _store_one(store: Store, run_id: str) -> None:
    await store.create_run("writer", {"n": run_id}, run_id=run_id)
    await store.append_event(Event("run.started", run_id, {"run_id": run_id}))


async def _reader_sees_later_runs(store: Store, store_url: str, mode: str) -> None:
    # The writer's process opens the URL a second time while its first store is open and has read.
    await store.list_runs()
    async with await open_store(store_url):
        pass
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(READER),
        store_url,
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        assert await _line(proc) == "ready"
        for run_id in ("first", "second", "third"):
            await _store_one(store, run_id)
            proc.stdin.write(f"see {run_id}\n".encode())
            await proc.stdin.drain()
            assert await _line(proc) == "seen", f"{mode} reader did not see run {run_id!r}"
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(40)
async def test_a_long_lived_reader_sees_runs_another_process_stores_later(
    store: Store, store_url: str
) -> None:
    await _reader_sees_later_runs(store, store_url, "plain")


@pytest.mark.timeout(40)
async def test_a_store_closed_and_opened_again_at_the_same_url_sees_later_runs(
    store: Store, store_url: str
) -> None:
    await _reader_sees_later_runs(store, store_url, "reopen")


@pytest.mark.timeout(40)
async def test_a_child_forked_after_its_parent_opened_the_store_sees_later_runs(
    store: Store, store_url: str
) -> None:
    await _reader_sees_later_runs(store, store_url, "fork")
