"""The shared knowledge-graph memory as a supervised child: one HTTP MCP server for every agent.

Agents in their own processes reach it over streamable HTTP on loopback (Origin and Host checked by
the memory server). A repair made while loading (a corrupt line quarantined, duplicates merged)
becomes a ``memory.repaired`` event of the node.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from beamish._exits import ExitReason
from beamish._net import url_host
from beamish._tasks import cancel_and_wait
from beamish.memory import KnowledgeGraph
from beamish.runtime import Actor


class MemoryService(Actor):
    """``ChildSpec("memory", MemoryService, kwargs={"file": …, "host": …, "port": …})``."""

    async def init(self, file: str, host: str = "127.0.0.1", port: int = 0, path: str = "/mcp") -> None:
        # The MCP server's first import builds pydantic models for ~0.3 s: done on the loop, it
        # stalled every actor of the node at each company start. A worker thread imports it instead.
        await asyncio.to_thread(importlib.import_module, "beamish.memory._server")
        import uvicorn

        from beamish._serve import EmbeddedServer  # lazy: uvicorn (~0.1 s), only for this server
        from beamish.memory._server import http_app  # lazy: the MCP SDK (~1.8 s), imported above in a thread

        Path(file).parent.mkdir(parents=True, exist_ok=True)
        node = self.node
        self.graph = KnowledgeGraph(
            file, on_repair=lambda repair: node.emit(repair.to_event(file)), report_repairs=False
        )
        app = http_app(self.graph, host=host, path=path)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
        )
        self.server = EmbeddedServer(config)
        self.task = asyncio.create_task(self.server.serve(), name="beamish-memory-http")
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError(f"the memory server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.01)
        me = self.ref
        self.task.add_done_callback(lambda _t: me.cast(("server-exited",)))

    async def handle_cast(self, message: Any) -> None:
        if message == ("server-exited",):
            raise RuntimeError("the memory server stopped serving")

    async def handle_call(self, request: Any) -> Any:
        if request == ("url",):
            sockets = [s for srv in self.server.servers for s in srv.sockets]
            host, port = sockets[0].getsockname()[:2]
            return f"http://{url_host(host)}:{port}/mcp"
        raise ValueError(f"memory service: unknown request {request!r}")

    #: Seconds the server has to stop politely, then forcibly, before its task is cancelled.
    polite_s = 3.0
    forced_s = 3.0

    async def terminate(self, reason: ExitReason) -> None:
        self.server.should_exit = True  # politely first: the MCP session manager's lifespan ends cleanly
        force = asyncio.get_running_loop().call_later(self.polite_s, setattr, self.server, "force_exit", True)
        try:
            await cancel_and_wait(self.task, grace_s=self.polite_s + self.forced_s)
        finally:
            force.cancel()
        await self.graph.aclose()
