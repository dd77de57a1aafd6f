"""``python -m beamish.memory``: serve the memory over stdio, as ``npx @modelcontextprotocol/server-memory``
would (``MEMORY_FILE_PATH`` honoured; ``BEAMISH_MEMORY_COMPACT_IDLE_S`` sets how long without writes
before an appended tail is compacted). The CLI's ``beamish memory serve`` offers more."""

import os

import anyio

from beamish.memory._jsonl import resolve_memory_path
from beamish.memory._server import serve_stdio
from beamish.memory._store import COMPACT_IDLE_S, KnowledgeGraph


async def _main() -> None:
    idle = os.environ.get("BEAMISH_MEMORY_COMPACT_IDLE_S")
    graph = KnowledgeGraph(
        resolve_memory_path(), compact_idle_s=COMPACT_IDLE_S if idle is None else float(idle)
    )
    try:
        await serve_stdio(graph)
    finally:
        await graph.aclose()


if __name__ == "__main__":
    anyio.run(_main)
