"""Migrations per component: another layer adds numbered files and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamish import StoreError
from beamish.errors import StoreVersionError
from beamish.journal import _migrations
from beamish.journal._sql import SyncTx
from beamish.journal._store import Store

pytestmark = pytest.mark.timeout(30)


def _write(root: Path, component: str, name: str, sqlite: str, postgresql: str) -> None:
    folder = root / component
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sqlite.sql").write_text(sqlite)
    (folder / f"{name}.postgresql.sql").write_text(postgresql)


def test_the_shipped_journal_migration_has_both_dialects() -> None:
    for dialect in ("sqlite", "postgresql"):
        shipped = _migrations.available(dialect)  # type: ignore[arg-type]
        assert next(iter(shipped)) == "journal"
        assert shipped["journal"][0].version == 1


def test_a_gap_in_a_components_versions_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "widgets", "0001_a", "SELECT 1;", "SELECT 1;")
    _write(tmp_path, "widgets", "0003_c", "SELECT 1;", "SELECT 1;")
    with pytest.raises(StoreError, match="0002 for sqlite is missing"):
        _migrations.available("sqlite", root=tmp_path)


async def test_a_new_component_is_applied_once_and_recorded(store: Store, tmp_path: Path) -> None:
    _write(
        tmp_path, "widgets", "0001_widgets",
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
        "CREATE TRIGGER widgets_named AFTER INSERT ON widgets BEGIN\n"
        "  UPDATE widgets SET name = upper(name) WHERE id = new.id;\nEND;\n",
        "CREATE TABLE widgets (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
    )  # fmt: skip
    shipped = {**_migrations.available(store.dialect), **_migrations.available(store.dialect, tmp_path)}

    def apply(tx: SyncTx) -> list[str]:
        return _migrations.apply(tx, "test", shipped, 0.0)

    assert await store.run(apply) == ["widgets/0001_widgets"]
    assert await store.run(apply) == []
    await store.execute("INSERT INTO widgets (id, name) VALUES (?, ?)", (1, "gear"))
    row = await store.fetchone("SELECT version FROM beamish_meta WHERE component = ?", ["widgets"])
    assert row == {"version": 1}
    without = _migrations.available(store.dialect)
    with pytest.raises(StoreVersionError, match="'widgets' is at version 1"):
        await store.run(lambda tx: _migrations.apply(tx, "test", without, 0.0))


async def test_a_store_from_an_older_beamish_is_upgraded_in_place(store_url: str) -> None:
    from beamish.journal import open_store

    old = await open_store(store_url)
    await old.create_run("ceo", {"kept": True}, run_id="r")
    await old.execute("ALTER TABLE runs DROP COLUMN generation")  # as journal/0001 left it
    await old.execute("ALTER TABLE snapshots DROP COLUMN format")
    await old.execute("ALTER TABLE snapshots DROP COLUMN prev_seq")
    await old.execute("DROP INDEX runs_queue")
    await old.execute("ALTER TABLE runs DROP COLUMN priority")
    await old.execute("ALTER TABLE runs DROP COLUMN concurrency_key")
    await old.execute("UPDATE beamish_meta SET version = 1 WHERE component = 'journal'")
    await old.close()
    new = await open_store(store_url)
    try:
        assert "journal/0002_generation" in new.applied
        assert "journal/0003_snapshot_segments" in new.applied
        assert "journal/0004_queue" in new.applied
        run = await new.get_run("r")
        assert run.input == {"kept": True}
        assert (run.priority, run.concurrency_key) == (0, None)  # the queue's defaults
        row = await new.fetchone("SELECT generation FROM runs WHERE run_id = ?", ["r"])
        assert row == {"generation": 0}
    finally:
        await new.close()
