"""The store goes away under a running node and comes back: nothing crashes, nothing is lost or doubled.

One test per kind of outage: PostgreSQL stopped for 2 s and for 20 s (``-m fast``), restarted with
``-m fast`` and with ``-m immediate`` (the server is killed and recovers from its WAL), and a SQLite
file whose disk is briefly full (a small tmpfs, filled). The node runs the README's supervisor
defaults (1 restart in 5 s, so two crashes would stop the tree) and a process-isolated agent whose
``once`` tool is held just before its effect. The store is taken away, the effect happens, and the
write of its result meets the outage. Every test checks that the node and the agent survive (no
exit, no restart), that every run succeeds, that every effect happened once, and that the agent saw
the outage (``store.unavailable`` / ``store.recovered`` journaled from its process). Each prints the
time from the store's return to the run's next step.

These stop the shared PostgreSQL briefly: the server is always started again in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from _services import PG_DSN, service_missing
from agent import fixture_tools as ft
from agent._scripts import call, write_script
from beamish import AgentSpec
from beamish.journal import Store, open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import EventLog, record_events, wait_for

PUBLISH_THEN_ANSWER = [
    {"tool_calls": [call("publish", text="{task}")]},
    {"text": "Published: {task}"},
]


# -- the outages ------------------------------------------------------------------------------------
def _pg(action: str, *args: str) -> None:
    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        service_missing("pg_ctlcluster (a local PostgreSQL cluster this test may stop)")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", action, *args]
    subprocess.run(command, check=True, timeout=60, capture_output=True)


def _pg_ready(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-t", "1"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL not ready {timeout}s after its start")
        time.sleep(0.05)


class Window:
    """An outage as the test made it: ``returned_at`` is the wall time the store took work again."""

    returned_at = 0.0


def _first_connection(timeout: float = 60.0) -> float:
    """Wall time of the first connection PostgreSQL accepts (polled every 10 ms while it starts)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(PG_DSN, connect_timeout=2).close()
            return time.time()
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.asynccontextmanager
async def pg_stopped(mode: str, down_s: float) -> AsyncIterator[Window]:
    """PostgreSQL stopped with ``-m mode`` for the block and at least ``down_s``; always started again."""
    window = Window()
    try:
        await asyncio.to_thread(_pg, "stop", "-m", mode)
        stopped_at = time.monotonic()
        yield window
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - stopped_at)))  # the outage itself
    finally:
        first = asyncio.ensure_future(asyncio.to_thread(_first_connection))
        try:
            await asyncio.to_thread(_pg, "start")
        finally:
            window.returned_at = await first
        await asyncio.to_thread(_pg_ready)


@contextlib.asynccontextmanager
async def disk_full(directory: Path, down_s: float) -> AsyncIterator[Window]:
    """Fill the file system of ``directory`` for the block and at least ``down_s``; then free it."""
    window = Window()
    filler = directory / "filler"
    started = time.monotonic()
    try:
        with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
            chunk = b"\0" * (64 * 1024)
            while True:
                try:
                    f.write(chunk)
                    f.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        yield window
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - started)))  # the outage itself
    finally:
        filler.unlink(missing_ok=True)
        window.returned_at = time.time()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of this test's own, so its disk can be filled without touching the machine's."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=False)
    if done.returncode != 0:
        service_missing("mounting a tmpfs (root, or CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# -- the scenario -----------------------------------------------------------------------------------
async def _checkpoint(store: Store) -> None:
    """SQLite: empty the WAL file, so the next write must claim new disk space."""
    if store.dialect == "sqlite":
        await store.fetchone("PRAGMA wal_checkpoint(TRUNCATE)")


async def ride_out(
    store_url: str,
    tmp_path: Path,
    outage: Callable[[], contextlib.AbstractAsyncContextManager[Window]],
    *,
    must_see: bool = True,
) -> float:
    """Run the scenario through ``outage``; returns seconds from the store's return to the next step."""
    script = write_script(tmp_path, "publisher", PUBLISH_THEN_ANSWER)
    spec = AgentSpec("publisher", "You publish.", f"scripted:{script}", tools=[ft.publish])
    tag = uuid.uuid4().hex[:8]
    warm, held, late = f"warm-{tag}", f"held-{tag}", f"late-{tag}"
    async with Node(store=store_url) as node:
        events = record_events(node)
        sup = await node.start_supervisor(SupervisorSpec([spec.child_spec()]))  # 1 restart in 5 s
        await node.submit("publisher", "warm-up", run_id=warm)
        assert (await node.result(warm, timeout=60)).status == "succeeded"  # idle, its connections pooled
        ft.hold_file(held).write_text("before")
        await node.submit("publisher", "mid-outage", run_id=held)
        await wait_for(ft.holding_file(held).exists, timeout=30, what="the tool to hold before its effect")
        async with await open_store(store_url) as observer:
            await _checkpoint(observer)
        async with outage() as window:
            ft.release_file(held).touch()  # the effect happens now; writing its result meets the outage
            await wait_for(lambda: len(ft.effects(held)) == 1, timeout=30, what="the held effect")
            submitted = asyncio.ensure_future(node.submit("publisher", "submitted-mid-outage", run_id=late))
        await submitted
        results = [await node.result(r, timeout=60) for r in (held, late)]
        _check_survived(events, sup.alive)
    assert [r.status for r in results] == ["succeeded", "succeeded"], results
    for run_id in (warm, held, late):
        assert len([e for e in ft.effects(run_id) if e.startswith("publish ")]) == 1, ft.effects(run_id)
    return await _resume_and_outage_seen(store_url, held, window.returned_at, must_see=must_see)


def _check_survived(events: EventLog, supervisor_alive: bool) -> None:
    assert supervisor_alive, "the tree survived"
    crashes = [
        e for e in events.events if e.kind in ("child.exited", "child.restarted", "supervisor.escalated")
    ]
    assert crashes == [], f"an outage is not a crash, and no restart is counted: {crashes}"


async def _resume_and_outage_seen(store_url: str, held: str, back: float, *, must_see: bool) -> float:
    """Seconds from the store's return to the held run's end; checks what the agent's process saw.

    A restart shorter than a pool checkout's wait (1 s) may pass unseen: the write just waits.
    """
    async with await open_store(store_url) as store:
        steps = await store.steps(held)
        finished = (await store.get_run(held)).updated_at
        journal = [e for _, e in await store.events(0)]
    assert [(s.kind, s.phase) for s in steps] == [("llm", "done"), ("tool", "done"), ("llm", "done")]
    seen = [e for e in journal if e.kind.startswith("store.") and e.data.get("pid") != os.getpid()]
    lengths = [e.data["outage_s"] for e in seen if e.kind == "store.recovered"]
    if must_see:
        assert any(e.kind == "store.unavailable" for e in seen), "the agent's own store saw the outage"
        assert lengths, "and its end, with its length"
    assert len(lengths) == len([e for e in seen if e.kind == "store.unavailable"]), "each outage ended"
    resumed = finished - back
    print(f"\nstore back -> held run finished: {resumed:.2f}s; the agent's process saw outages of {lengths}s")
    return resumed


# -- one test per outage ----------------------------------------------------------------------------
PG_OUTAGES = [
    pytest.param("fast", 2.0, id="stopped-2s"),
    pytest.param("fast", 0.0, id="restarted-fast"),
    pytest.param("immediate", 0.0, id="restarted-immediate"),
    pytest.param("fast", 20.0, id="stopped-20s", marks=pytest.mark.slow),
]


@pytest.mark.postgres
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode, down_s", PG_OUTAGES)
async def test_a_postgresql_outage_is_ridden_out_by_every_run(
    pg_url: str, tmp_path: Path, mode: str, down_s: float
) -> None:
    outage = lambda: pg_stopped(mode, down_s)  # noqa: E731
    resumed = await ride_out(pg_url, tmp_path, outage, must_see=down_s > 0)
    assert resumed < 10.0, "resumed promptly, not at a restart backoff's cap"


@pytest.mark.timeout(120)
async def test_a_briefly_full_disk_under_sqlite_is_ridden_out_by_every_run(
    tmpfs: Path, tmp_path: Path
) -> None:
    resumed = await ride_out(f"sqlite:///{tmpfs}/journal.db", tmp_path, lambda: disk_full(tmpfs, 2.0))
    assert resumed < 10.0, "resumed promptly, not at a restart backoff's cap"
