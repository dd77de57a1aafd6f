"""The typer application: each command group lives in its own module and registers here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from beamish._version import __version__
from beamish.cli._common import fail

#: click's UsageError (typer vendors its own click, so it is found through a public subclass).
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A usage error (a missing argument, a bad value, an unknown command) as one line — what is
    wrong, the usage, where to read more — instead of a boxed panel; exit code 2, as click's."""
    try:
        yield
    except _USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `beamish` alone: the help, as usual
            raise
        ctx: Any = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "beamish"
        usage = ctx.get_usage().removeprefix("Usage: ") if ctx is not None else f"{path} --help"
        what = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        what = what[:1].lower() + what[1:]
        code = int(getattr(exc, "exit_code", 2))
        raise fail(f"{path}: {what}; usage: {usage} (more: {path} --help)", code) from None


class _Commands(TyperGroup):
    """beamish's command group: usage errors in one line (see :func:`_one_line`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _one_line():
            return super().invoke(ctx)


app = typer.Typer(
    name="beamish", help="Keep teams of LLM agents alive and honest.", no_args_is_help=True, cls=_Commands
)


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
