"""``beamish memory serve|check|repair``: the knowledge-graph memory from the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise typer.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
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

    from beamish.memory import KnowledgeGraph, resolve_memory_path, serve_http, serve_stdio

    target = resolve_memory_path(file)
    address = _host_port(http) if http else None

    async def run() -> None:
        graph = KnowledgeGraph(target, compact_idle_s=compact_idle)
        try:
            if address is None:
                await serve_stdio(graph, page_size=page_size)
            else:
                typer.echo(f"memory {target} on http://{address[0]}:{address[1]}{path}", err=True)
                await serve_http(
                    graph,
                    address[0],
                    address[1],
                    path,
                    allowed_origins=allow_origin or [],
                    page_size=page_size,
                )
        finally:
            await graph.aclose()

    anyio.run(run)


@app.command()
def check(file: Annotated[Path, typer.Argument(help="The memory file to check.")]) -> None:
    """Report corrupt lines, duplicates, dangling relations and stray temp files; change nothing.

    Exit code: 0 clean, 1 something ``repair`` fixes, 2 the file is missing or unreadable,
    3 only relations naming no entity (allowed by the reference; kept by ``repair``).
    """
    from beamish.memory import check_file

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
    from beamish.memory import quarantine_path, repair_file

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
