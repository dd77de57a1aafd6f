"""The typer application: each command group lives in its own module and registers here."""

from __future__ import annotations

from typing import Annotated

import typer

from beamish._version import __version__

app = typer.Typer(name="beamish", help="Keep teams of LLM agents alive and honest.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print beamish's version."),
    ] = None,
) -> None:
    """Keep teams of LLM agents alive and honest."""


@app.command()
def version() -> None:
    """Print beamish's version."""
    _print_version(True)


# Command modules register after the app exists: one line each.
from beamish.cli import (  # noqa: E402
    _agents,
    _approvals,
    _backup,
    _cluster,
    _company,
    _demo,
    _digest,
    _journal,
    _memory,
    _runs,
    _schedules,
    _setup,
    _upgrade,
)

_setup.register(app)
_company.register(app)
_runs.register(app)
_agents.register(app)
_approvals.register(app)
_digest.register(app)
_demo.register(app)
_upgrade.register(app)
_backup.register(app)
app.add_typer(_journal.journal_app)
app.add_typer(_memory.app)
app.add_typer(_schedules.schedules_app)
app.add_typer(_cluster.node_app)


def main() -> None:
    app()
