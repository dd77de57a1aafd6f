"""The typer application: each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

app = typer.Typer(name="beamish", help="Keep teams of LLM agents alive and honest.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print beamish's version."""
    from beamish import __version__

    typer.echo(__version__)


def main() -> None:
    app()
