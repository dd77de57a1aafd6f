"""The writer the crash test kills: writes forever, acknowledging each durable write over a pipe."""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection

from beamish.memory import KnowledgeGraph


def write_forever(path: str, acks: Connection, prefix: str, width: int) -> None:
    """Keep ``width`` writes in flight (creates, which are appended, and observations on one
    shared entity, which rewrite the file); send ``(kind, name)`` for each only after the call
    returned, i.e. once it is durable."""

    async def main() -> None:
        # a small tail bound so the run also compacts, not only appends and rewrites
        graph = KnowledgeGraph(path, report_repairs=False, compact_tail_bytes=2048, compact_idle_s=None)
        counter = 0

        async def one(n: int) -> None:
            name = f"{prefix}-{n}"
            if n % 2:
                await graph.add_observations([{"entityName": "counter", "contents": [name]}])
                acks.send(("observation", name))
            else:
                await graph.create_entities([{"name": name, "entityType": "crash", "observations": [name]}])
                acks.send(("entity", name))

        while True:
            await asyncio.gather(*(one(counter + i) for i in range(width)))
            counter += width

    asyncio.run(main())
