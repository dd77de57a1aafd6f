"""``python -m beamish.memory``: serve the memory over stdio, as ``npx @modelcontextprotocol/server-memory``
would (``MEMORY_FILE_PATH`` honoured). The CLI's ``beamish memory serve`` offers more."""

import anyio

from beamish.memory._jsonl import resolve_memory_path
from beamish.memory._server import serve_stdio
from beamish.memory._store import KnowledgeGraph


async def _main() -> None:
    graph = KnowledgeGraph(resolve_memory_path())
    try:
        await serve_stdio(graph)
    finally:
        await graph.aclose()


if __name__ == "__main__":
    anyio.run(_main)
