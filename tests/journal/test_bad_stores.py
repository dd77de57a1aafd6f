"""Refusals that leave the store untouched: foreign, corrupt, newer-version stores; file mode 0600."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from beamish import StoreError
from beamish.errors import CorruptStore, StoreVersionError
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(30)


def _fingerprint(path: Path) -> tuple[str, list[str]]:
    siblings = sorted(p.name for p in path.parent.iterdir())
    return hashlib.sha256(path.read_bytes()).hexdigest(), siblings


async def test_a_new_sqlite_store_is_created_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = await open_store(f"sqlite:///{path}")
    await store.create_run("ceo", None, run_id="r")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for sibling in tmp_path.iterdir():
        assert stat.S_IMODE(os.stat(sibling).st_mode) == 0o600, sibling
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert await store.run(lambda tx: tx.fetchone("PRAGMA synchronous")) == {"synchronous": 2}  # FULL
    assert await store.run(lambda tx: tx.fetchone("PRAGMA busy_timeout")) == {"timeout": 10_000}
    await store.close()


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my precious notes\n" * 100)
    before = _fingerprint(path)
    with pytest.raises(CorruptStore, match="not a SQLite database"):
        await open_store(f"sqlite:///{path}")
    assert _fingerprint(path) == before


async def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(CorruptStore, match="another program"):
        await open_store(f"sqlite:///{path}")
    assert _fingerprint(path) == before


async def test_a_damaged_store_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = await open_store(f"sqlite:///{path}")
    await store.create_run("ceo", None, run_id="r")
    await store.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, after the 100-byte header
    path.write_bytes(bytes(data))
    before = _fingerprint(path)
    with pytest.raises(CorruptStore, match=r"damaged|another program"):
        await open_store(f"sqlite:///{path}")
    assert _fingerprint(path) == before


async def test_a_store_from_a_newer_beamish_is_refused_untouched_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE beamish_meta SET version = 99 WHERE component = 'journal'")
    conn.commit()
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(StoreVersionError, match=r"version 99.*newer beamish"):
        await open_store(f"sqlite:///{path}")
    assert _fingerprint(path) == before


async def test_a_store_with_an_unknown_component_is_from_a_newer_beamish(store_url: str) -> None:
    store = await open_store(store_url)
    await store.execute("INSERT INTO beamish_meta (component, version, applied_at) VALUES ('future', 1, 0)")
    await store.close()
    with pytest.raises(StoreVersionError, match="'future'"):
        await open_store(store_url)


async def test_a_postgres_schema_from_a_newer_beamish_is_refused_untouched(pg_url: str) -> None:
    store = await open_store(pg_url)
    await store.execute("UPDATE beamish_meta SET version = 99 WHERE component = 'journal'")
    await store.close()
    with pytest.raises(StoreVersionError, match="version 99"):
        await open_store(pg_url)
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT version FROM beamish_meta WHERE component = 'journal'").fetchone()
    assert row == (99,)


async def test_a_postgres_schema_with_foreign_tables_is_refused_untouched(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id int)")
    with pytest.raises(CorruptStore, match="not a beamish journal"):
        await open_store(pg_url)
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    assert tables == [("runs",)]


async def test_an_unreachable_postgres_is_a_clear_error_at_once(postgres_dsn: str) -> None:
    with pytest.raises(StoreError, match="Connection refused"):
        await open_store("postgresql://postgres@127.0.0.1:1/test")
    base = postgres_dsn.rsplit("/", 1)[0]
    with pytest.raises(StoreError, match='database "no_such_database" does not exist'):
        await open_store(f"{base}/no_such_database")


async def test_a_write_waiting_for_the_sqlite_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = await open_store(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection, say
    other.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.ensure_future(store.create_run("ceo", None, run_id="r"))
        turns = 0
        while turns < 200:  # the loop keeps turning while the write waits on the lock
            await asyncio.sleep(0)
            turns += 1
        assert not write.done()
        other.execute("COMMIT")
        run, created = await asyncio.wait_for(write, 10)
        assert created and run.run_id == "r"
    finally:
        other.close()
        await store.close()


def test_a_postgres_password_never_shows_in_messages() -> None:
    from beamish.journal._postgres import PostgresBackend
    from beamish.telemetry import MASK

    where = PostgresBackend("postgresql://bob:s3cret@db/x?a=1").where
    assert where == f"postgresql://bob:{MASK}@db/x?a=1"
    where = PostgresBackend("postgresql://db/x?sslmode=require&password=s3cret").where
    assert where == f"postgresql://db/x?sslmode=require&password={MASK}"
