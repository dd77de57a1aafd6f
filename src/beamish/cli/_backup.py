"""``beamish backup`` / ``beamish restore``: the store, copied while the company runs, and put back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from beamish._exceptions import StoreError
from beamish.cli._common import ConfigOption, JsonOption, load, run_async
from beamish.cli._output import console, emit_json
from beamish.company._control import _answers, control_path
from beamish.journal._backup import BackupReport, backup_store, restore_store

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="The store's URL (default: the url in the config's store table)."),
]


def _url(store: str | None, config: Path) -> str:
    return store if store is not None else load(config).store_url


async def _refuse_if_running(url: str, config: Path, store: str | None) -> None:
    """A restore under a running node swaps the file beneath its open journal: refused."""
    base = load(config).base_dir if store is None else Path.cwd()
    sock = control_path(url, base)
    if await _answers(sock):
        raise StoreError(
            f"a node is running this company (it answers on {sock}): stop it first (Ctrl-C, or "
            "systemctl stop), then restore"
        )


def _report(verb: str, report: BackupReport, json: bool, source: Path | None = None) -> None:
    if json:
        emit_json(dataclasses.asdict(report))
        return
    where = f" (schema {report.schema})" if report.schema else ""
    what = f"{verb} {report.path}"  # a backup's file; a restore's store (PostgreSQL: its backup)
    if source is not None:
        what = f"{verb} {source}" + (f" into {report.path}" if report.backend == "sqlite" else "")
    runs = f"{report.runs} run" + ("" if report.runs == 1 else "s")
    console.print(f"{what}: {runs}, {report.bytes:,} bytes, {report.backend}{where}")


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        dest: Annotated[Path, typer.Argument(help="The backup file to write (replaced if it exists).")],
        config: ConfigOption = Path("beamish.toml"),
        store: StoreOption = None,
        json: JsonOption = False,
    ) -> None:
        """Copy the store to a file while the company runs, one consistent moment of it.

        SQLite: the online backup API, checked, 0600, renamed into place. PostgreSQL: pg_dump of the
        store's schema on one snapshot."""
        url = _url(store, config)
        _report("backed up to", run_async(lambda: backup_store(url, dest)), json)

    @app.command()
    def restore(
        source: Annotated[Path, typer.Argument(help="A file written by `beamish backup`.")],
        config: ConfigOption = Path("beamish.toml"),
        store: StoreOption = None,
        replace: Annotated[
            bool, typer.Option("--replace", help="Replace an existing SQLite store (stop the company first).")
        ] = False,
        json: JsonOption = False,
    ) -> None:
        """Put a backup back as the store (stop the company first).

        SQLite: the backup is checked, and an existing store is replaced only with --replace.
        PostgreSQL: pg_restore --clean of the schema."""
        url = _url(store, config)

        async def go() -> BackupReport:
            await _refuse_if_running(url, config, store)
            return await restore_store(source, url, replace=replace)

        _report("restored", run_async(go), json, source)
