"""The knowledge-graph memory: a drop-in replacement for the reference MCP memory server.

Same nine tools, same file format, same answers; underneath, no lost writes (one writer per file
across threads and processes, grouped durable commits), a cached indexed graph, and loading that
repairs instead of losing lines. Use it in-process as :class:`KnowledgeGraph`, or serve it over
stdio / streamable HTTP with :func:`serve_stdio` / :func:`serve_http`.
"""

from typing import Any

from beamish.memory._check import CheckReport, check_file, repair_file
from beamish.memory._graph import Entity, GraphDict, ObservationResult, Relation
from beamish.memory._jsonl import Repair, quarantine_path, resolve_memory_path
from beamish.memory._schema import RESOURCE_URI
from beamish.memory._store import KnowledgeGraph

_SERVER_NAMES = frozenset({"build_server", "http_app", "serve_http", "serve_stdio"})


def __getattr__(name: str) -> Any:
    # The MCP SDK takes a second to import; agents that only use KnowledgeGraph in-process
    # (and crash-test writers) should not pay for it.
    if name in _SERVER_NAMES:
        from beamish.memory import _server  # lazy: the MCP SDK (~1.8 s); KnowledgeGraph users skip it

        return getattr(_server, name)
    raise AttributeError(f"module 'beamish.memory' has no attribute {name!r}")


__all__ = [
    "RESOURCE_URI",
    "CheckReport",
    "Entity",
    "GraphDict",
    "KnowledgeGraph",
    "ObservationResult",
    "Relation",
    "Repair",
    "build_server",
    "check_file",
    "http_app",
    "quarantine_path",
    "repair_file",
    "resolve_memory_path",
    "serve_http",
    "serve_stdio",
]
