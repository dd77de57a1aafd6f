"""The typer application: each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

app = typer.Typer(name="beamish", help="Keep teams of LLM agents alive and honest.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print beamish's version."""
    from beamish import __version__

    typer.echo(__version__)


# Command modules register after the app exists: one line each.
from beamish.cli import _cluster, _company, _demo, _journal, _memory, _schedules, _upgrade  # noqa: E402

_company.register(app)
_demo.register(app)
_upgrade.register(app)
app.add_typer(_journal.journal_app)
app.add_typer(_memory.app)
app.add_typer(_schedules.schedules_app)
app.add_typer(_cluster.node_app)


def main() -> None:
    app()
