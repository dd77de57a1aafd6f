"""What every company command shares: the config options, loading a config (every problem listed,
exit 2), running a coroutine with beamish errors as one line, and opening the company's store.

Its own module so the command modules can import it without importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from beamish._exceptions import BeamishError, ConfigError, RunNotFound, StartFailed
from beamish.cli._output import err
from beamish.company._config import CompanyConfig, load_config
from beamish.journal import open_store

T = TypeVar("T")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="BEAMISH_CONFIG", help="The company's beamish.toml."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (with -f: one object per line).")
]


def load(path: Path) -> CompanyConfig:
    """The config, or exit 2 with every problem listed."""
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print("[bold red]invalid config[/]", markup=True)
        err.print(str(exc), soft_wrap=True)  # one line per problem
        if not path.expanduser().exists():
            err.print(
                f"(looked in {Path.cwd()}: name the company's beamish.toml, as an argument, with -c or "
                "BEAMISH_CONFIG, or create one with `beamish init`)",
                soft_wrap=True,
            )
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as one line on stderr (no markup: hints keep their brackets) and return the
    exit to raise: ``raise fail(…)``."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except BeamishError as exc:
        raise fail(_said(exc)) from None


def _said(exc: BeamishError) -> str:
    """A child that could not start for a reason beamish words itself (a taken port): that reason,
    not wrapped in the supervisor's ``child 'memory' failed to start: Crashed('…')`` (the child is
    named when the reason does not name it)."""
    error = getattr(getattr(exc, "reason", None), "error", None)
    if isinstance(exc, StartFailed) and isinstance(error, StartFailed):
        return _said(error)  # a supervisor's child's child: the one that did not start is named
    if isinstance(exc, StartFailed) and isinstance(error, BeamishError):
        inner = _said(error)
        return inner if str(exc.child_id) in inner else f"child {exc.child_id!r} did not start: {inner}"
    if isinstance(exc, RunNotFound):  # a mistyped or truncated id: where the real ones are
        return f"{exc}; `beamish runs` lists the recent ones"
    return str(exc)


async def _open_store(config: CompanyConfig) -> Any:
    """The company's store. A SQLite file whose folder is missing is refused, not created there: a
    mistyped path must not start an empty journal beside the real one."""
    if config.store_url.startswith("sqlite:///"):
        folder = Path(config.store_url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        if not folder.is_dir():
            raise ConfigError(
                f"{config.path}: store.url: the folder {folder} does not exist; create it "
                f"(mkdir -p {folder}) or point [store] url at an existing folder"
            )
    return await open_store(config.store_url)


def with_store(cfg: CompanyConfig, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(store)`` on the company's store, opened for it and closed after; errors as ``run_async``."""

    async def go() -> T:
        store = await _open_store(cfg)
        try:
            return await work(store)
        finally:
            await store.close()

    return run_async(go)
