"""Backups: the store copied while it is written, restored, and its runs read back, on every backend."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish import StoreError
from beamish.cli import app
from beamish.journal import Store, backup_store, open_store, restore_store
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(60)


async def _runs(url: str) -> set[str]:
    store = await open_store(url)
    try:
        return {run.run_id for run in await store.list_runs(limit=10_000)}
    finally:
        await store.close()


async def test_a_backup_taken_while_runs_are_written_restores_every_run_it_saw(
    store: Store, store_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    for i in range(20):
        await store.create_run("ceo", {"task": i}, run_id=f"before-{i}")
    writing = asyncio.Event()

    async def writer() -> None:  # the company keeps journaling while the backup is taken
        i = 0
        while True:
            await store.create_run("cfo", {"task": i}, run_id=f"during-{i}")
            writing.set()
            i += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    await writing.wait()
    report = await backup_store(store_url, tmp_path / "journal.backup")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for i in range(5):
        await store.create_run("ceo", {"task": i}, run_id=f"after-{i}")

    assert report.runs >= 21
    if store_url.startswith("sqlite"):
        assert stat.S_IMODE(os.stat(report.path).st_mode) == 0o600
        restored_url = f"sqlite:///{tmp_path}/restored.db"
    else:
        restored_url = store_url  # pg_restore --clean puts the schema back as it was
    await store.close()
    await restore_store(report.path, restored_url, replace=True)
    runs = await _runs(restored_url)
    assert {f"before-{i}" for i in range(20)} <= runs
    assert not any(r.startswith("after-") for r in runs)  # the backup is one moment, before these
    assert len(runs) == report.runs


async def test_a_restored_store_takes_new_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    store = await open_store(url)
    await store.create_run("ceo", "x", run_id="r-1")
    await backup_store(url, tmp_path / "a.backup")
    await store.close()
    target = f"sqlite:///{tmp_path}/b.db"
    await restore_store(tmp_path / "a.backup", target)
    restored = await open_store(target)
    try:
        await restored.create_run("ceo", "y", run_id="r-2")
        assert {r.run_id for r in await restored.list_runs()} == {"r-1", "r-2"}
    finally:
        await restored.close()


async def test_a_sqlite_restore_does_not_overwrite_a_store_unless_told(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    store = await open_store(url)
    await store.create_run("ceo", "x", run_id="kept")
    await backup_store(url, tmp_path / "a.backup")
    await store.create_run("ceo", "y", run_id="newer")
    await store.close()
    with pytest.raises(StoreError, match="--replace"):
        await restore_store(tmp_path / "a.backup", url)
    assert await _runs(url) == {"kept", "newer"}
    (tmp_path / "a.db-wal").write_bytes(b"stale")  # an old log must not be replayed over the restore
    await restore_store(tmp_path / "a.backup", url, replace=True)
    assert await _runs(url) == {"kept"}


async def test_a_file_that_is_not_a_beamish_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not a readable beamish store"):
        await restore_store(tmp_path / "notes.txt", f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(StoreError, match="no store to back up"):
        await backup_store(f"sqlite:///{tmp_path}/missing.db", tmp_path / "b")
    assert not (tmp_path / "x.db").exists()


def test_beamish_backup_and_restore_commands_round_trip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/journal.db"

    async def seed() -> None:
        store = await open_store(url)
        await store.create_run("ceo", "x", run_id="r-1")
        await store.close()

    asyncio.run(seed())
    runner = CliRunner()
    done = runner.invoke(app, ["backup", str(tmp_path / "b.db"), "--store", url, "--json"])
    assert done.exit_code == 0, done.output
    assert '"runs": 1' in done.output
    target = f"sqlite:///{tmp_path}/restored.db"
    done = runner.invoke(app, ["restore", str(tmp_path / "b.db"), "--store", target])
    assert done.exit_code == 0, done.output
    assert ": 1 run, " in done.output
    again = runner.invoke(app, ["restore", str(tmp_path / "b.db"), "--store", target])
    assert again.exit_code == 1 and "--replace" in again.output
    assert asyncio.run(_runs(target)) == {"r-1"}
