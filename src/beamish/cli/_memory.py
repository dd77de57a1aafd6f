"""``beamish memory serve|check|repair``: the knowledge-graph memory from the command line."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from beamish._exceptions import BeamishError
from beamish._net import is_loopback, url_host
from beamish._proctitle import set_title
from beamish.memory import KnowledgeGraph, check_file, quarantine_path, repair_file, resolve_memory_path

if TYPE_CHECKING:
    from beamish.memory import CheckReport

app = typer.Typer(
    name="memory", help="The shared knowledge-graph memory (an MCP server).", no_args_is_help=True
)

#: ``check`` exit codes: clean; something ``repair`` fixes; file missing or unreadable; only dangling
#: relations (the reference accepts them, so ``repair`` keeps them: fix by hand or ignore).
EXIT_CLEAN, EXIT_NEEDS_REPAIR, EXIT_UNREADABLE, EXIT_DANGLING = 0, 1, 2, 3


def _report_on(file: Path, act: Callable[[Path], CheckReport], verb: str) -> CheckReport:
    """``act(file)``; a missing or unreadable file exits ``EXIT_UNREADABLE`` naming it."""
    if not file.is_file():
        typer.echo(f"{file}: no such file", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    try:
        return act(file)
    except OSError as exc:
        typer.echo(f"{file}: {verb}: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None


def _refuse(message: str) -> typer.Exit:
    """One line on stderr and exit 2: bad input is named, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise _refuse(f"--http: expected HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    if not 0 <= int(port) <= 65535:
        raise _refuse(f"--http: port {int(port)} is out of range 0-65535")
    return host.strip("[]"), int(port)


@app.command()
def serve(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Memory file (default: MEMORY_FILE_PATH, else ./memory.jsonl)."),
    ] = None,
    http: Annotated[
        str | None, typer.Option("--http", help="Serve streamable HTTP on HOST:PORT instead of stdio.")
    ] = None,
    path: Annotated[str, typer.Option("--path", help="The HTTP endpoint path.")] = "/mcp",
    page_size: Annotated[
        int | None,
        typer.Option(
            "--page-size", min=1, help="Page read_graph/search_nodes/open_nodes (off: as the reference)."
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None, typer.Option("--allow-origin", help="An extra allowed Origin (repeatable).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Bearer token every HTTP request must send (needed beyond loopback)."),
    ] = None,
    compact_idle: Annotated[
        float,
        typer.Option(
            "--compact-idle",
            min=0.0,
            help="Seconds without writes before entities appended out of place are compacted.",
        ),
    ] = 1.0,
) -> None:
    """Serve the memory over stdio (default) or streamable HTTP (loopback unless told otherwise)."""
    import anyio

    from beamish.memory import _server  # lazy: the MCP SDK (~1.8 s), only for `beamish memory serve`

    target = resolve_memory_path(file)
    address = _host_port(http) if http else None
    token = token or os.environ.get(_server.TOKEN_ENV) or None
    if address is not None and not is_loopback(address[0]) and token is None:
        raise _refuse(
            f"--http {http}: serving beyond loopback needs a token; pass --token or set {_server.TOKEN_ENV} "
            "(clients send it as 'Authorization: Bearer <token>')"
        )
    options = {"allowed_origins": allow_origin or [], "page_size": page_size, "token": token}
    set_title(f"memory server {target.name}")

    async def run() -> None:
        graph = KnowledgeGraph(target, compact_idle_s=compact_idle)
        try:
            if address is None:
                await _server.serve_stdio(graph, page_size=page_size)
            else:
                await _serve_http(_server.serve_http, graph, target, address, path, options)
        finally:
            await graph.aclose()

    try:
        anyio.run(run)
    except BaseException as exc:  # a task group wraps the start's error in a group
        error = _beamish_error(exc)
        if error is None:
            raise
        raise _refuse(str(error)) from None


async def _serve_http(
    serve_http: Callable[..., Coroutine[Any, Any, None]],
    graph: Any,
    target: Path,
    address: tuple[str, int],
    path: str,
    options: dict[str, Any],
) -> None:
    """Serve until stopped; "serving on …" is said once the socket listens, never before.

    ``serve_http`` is the memory server's, handed over by :func:`serve` (the one place that imports
    the MCP SDK)."""
    import anyio

    started = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(functools.partial(serve_http, graph, *address, path, started=started, **options))
        await started.wait()
        where = f"http://{url_host(address[0])}:{address[1]}{path}"
        typer.echo(f"memory {target}: serving on {where}", err=True)


def _beamish_error(exc: BaseException) -> BeamishError | None:
    """The BeamishError ``exc`` is or holds (anyio's task groups wrap what a task raised)."""
    if isinstance(exc, BeamishError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _beamish_error(inner)
            if found is not None:
                return found
    return None


@app.command()
def check(file: Annotated[Path, typer.Argument(help="The memory file to check.")]) -> None:
    """Report corrupt lines, duplicates, dangling relations and stray temp files; change nothing.

    Exit code: 0 clean, 1 something ``repair`` fixes, 2 the file is missing or unreadable,
    3 only relations naming no entity (allowed by the reference; kept by ``repair``).
    """
    report = _report_on(file, check_file, "cannot read")
    for line in report.lines():
        typer.echo(line)
    if report.repairs or report.stray_temp_files:
        raise typer.Exit(EXIT_NEEDS_REPAIR)
    raise typer.Exit(EXIT_DANGLING if report.dangling else EXIT_CLEAN)


@app.command()
def repair(file: Annotated[Path, typer.Argument(help="The memory file to repair in place.")]) -> None:
    """Quarantine unusable lines, merge duplicates, remove stray temp files (safe while servers run).

    Exit code: 0 repaired or already clean, 2 the file is missing or unreadable.
    """
    report = _report_on(file, repair_file, "cannot repair")
    for repair_ in report.repairs:
        typer.echo(f"repaired {repair_.describe()}")
    for number, detail in report.dangling:
        typer.echo(f"kept line {number}: dangling relation: {detail}")
    for stray in report.stray_temp_files:
        typer.echo(f"removed stray temp file {stray.name}")
    if any(r.kind in ("corrupt_line", "invalid_item") for r in report.repairs):
        typer.echo(f"quarantined lines are in {quarantine_path(report.path)}")
    typer.echo(f"{report.path}: {report.entities} entities, {report.relations} relations")
