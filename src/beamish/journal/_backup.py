"""Back up and restore a store while its company runs: ``beamish backup`` / ``beamish restore``.

SQLite: SQLite's online backup API copies the database page by page inside one read transaction, so
the copy is one consistent moment of the journal while nodes keep writing (WAL readers never block
writers); it is written beside the destination, checked with ``PRAGMA integrity_check``, synced,
created ``0600`` and renamed into place, so a crash leaves either no backup or a whole one.

PostgreSQL: ``pg_dump`` of the one schema the store lives in (``current_schema()``, from the URL's
``search_path``), in its custom format, as one snapshot transaction; ``pg_restore`` puts it back.
The password travels in ``PGPASSWORD``, never on a command line that ``ps`` shows.

A restore replaces the store: stop the company first. A SQLite restore refuses an existing store
unless told to replace it, and removes the old write-ahead log with it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from beamish._exceptions import StoreError
from beamish._redact import redact_text
from beamish.journal._sqlite import sqlite_path
from beamish.journal._store import open_store


@dataclass(frozen=True)
class BackupReport:
    """What a backup or a restore wrote: the backend, the file, its size and the runs it holds."""

    backend: str
    path: str
    bytes: int
    runs: int
    schema: str | None = None


async def backup_store(url: str, dest: str | Path) -> BackupReport:
    """Copy the store at ``url`` to the file ``dest``, online; :class:`StoreError` when it cannot."""
    target = Path(dest).expanduser()
    if target.is_dir():
        raise StoreError(f"{target} is a folder: name the backup file, e.g. {target / 'beamish-backup.db'}")
    if not target.parent.is_dir():
        raise StoreError(
            f"{target}: the folder {target.parent} does not exist; create it (mkdir -p {target.parent}) "
            "or name a file in an existing folder"
        )
    if url.startswith("sqlite:///"):
        store = Path(sqlite_path(url))
        if target.resolve() == store.resolve():
            raise StoreError(f"{target} is the store itself: name another file for the backup")
        return await asyncio.to_thread(_sqlite_backup, str(store), target)
    if url.startswith(("postgresql://", "postgres://")):
        return await _pg_backup(url, target)
    raise StoreError(f"unknown store URL {redact_text(url)!r}: use sqlite:///path.db or postgresql://…")


async def restore_store(source: str | Path, url: str, *, replace: bool = False) -> BackupReport:
    """Put the backup ``source`` back as the store at ``url`` (the company stopped)."""
    backup = Path(source).expanduser()
    if backup.is_dir():
        raise StoreError(f"{backup} is a folder: name the backup file `beamish backup` wrote")
    if not backup.is_file():
        raise StoreError(f"{backup}: no such backup file")
    if url.startswith("sqlite:///"):
        return await asyncio.to_thread(_sqlite_restore, backup, Path(sqlite_path(url)), replace)
    if url.startswith(("postgresql://", "postgres://")):
        return await _pg_restore(backup, url)
    raise StoreError(f"unknown store URL {redact_text(url)!r}: use sqlite:///path.db or postgresql://…")


# -- SQLite ---------------------------------------------------------------------------------------


def _sqlite_backup(path: str, target: Path) -> BackupReport:
    if not Path(path).is_file():
        raise StoreError(f"{path}: no store to back up")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 whatever the umask
    os.close(fd)
    try:
        source = sqlite3.connect(path, timeout=30)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)  # every page in one step: one read transaction, one moment
                _check(copy, partial)
                runs = _count_runs(copy)
            finally:
                copy.close()
        finally:
            source.close()
        _fsync(partial)
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup of {path} failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport("sqlite", str(target), target.stat().st_size, runs)


def _sqlite_restore(backup: Path, target: Path, replace: bool) -> BackupReport:
    try:
        check = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            _check(check, backup)
            runs = _count_runs(check)
        finally:
            check.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{backup}: not a readable beamish store ({exc})") from exc
    if target.exists() and not replace:
        raise StoreError(f"{target} exists: stop the company, then restore with --replace")
    partial = target.with_name(target.name + ".restoring")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        with open(backup, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        _fsync(partial)
        for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            stale.unlink(missing_ok=True)  # the old log would be replayed over the restored pages
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport("sqlite", str(target), target.stat().st_size, runs)


def _check(conn: sqlite3.Connection, where: Path) -> None:
    row = conn.execute("PRAGMA integrity_check").fetchone()
    if row is None or row[0] != "ok":
        raise StoreError(f"{where}: integrity check failed: {row}")
    meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'beamish_meta'").fetchone()
    if meta is None:
        raise StoreError(f"{where}: not a beamish store")


def _count_runs(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM runs").fetchone()
    return int(row[0]) if row else 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path or Path("."), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- PostgreSQL -----------------------------------------------------------------------------------


async def _pg_backup(url: str, target: Path) -> BackupReport:
    import psycopg  # the postgres extra, present whenever a postgresql:// store is

    await _pg_schema_and_runs(url)  # a beamish store (migrated), or a clear error before pg_dump runs
    partial = target.with_name(target.name + ".partial")
    # One snapshot for the count and the dump: the runs reported are exactly the runs dumped.
    async with await psycopg.AsyncConnection.connect(url, autocommit=False) as conn:
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        row = await (
            await conn.execute("SELECT pg_export_snapshot(), current_schema(), (SELECT count(*) FROM runs)")
        ).fetchone()
        assert row is not None
        snapshot, schema, runs = str(row[0]), str(row[1]), int(row[2])
        await _tool(
            "pg_dump",
            [
                "--format=custom",
                f"--schema={schema}",
                f"--file={partial}",
                "--no-owner",
                f"--snapshot={snapshot}",
            ],
            url,
        )
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    return BackupReport("postgresql", str(target), target.stat().st_size, runs, schema)


async def _pg_restore(backup: Path, url: str) -> BackupReport:
    await _tool("pg_restore", ["--clean", "--if-exists", "--no-owner", "--exit-on-error", str(backup)], url)
    schema, runs = await _pg_schema_and_runs(url)
    return BackupReport("postgresql", str(backup), backup.stat().st_size, runs, schema)


async def _pg_schema_and_runs(url: str) -> tuple[str, int]:
    store = await open_store(url)
    try:
        row = await store.fetchone("SELECT count(*) AS n FROM runs")
        return str(store.schema), int(row["n"]) if row else 0
    finally:
        await store.close()


async def _tool(name: str, args: list[str], url: str) -> None:
    program = shutil.which(name)
    if program is None:
        raise StoreError(
            f"{name} is not installed (the PostgreSQL client tools: apt install postgresql-client)"
        )
    dsn, env = _without_password(url)
    done = await asyncio.to_thread(
        subprocess.run,
        [program, *args, f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise StoreError(f"{name} failed: {redact_text(done.stderr.strip())[-2000:]}")


def _without_password(url: str) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is None:
        return url, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env
