"""The shared knowledge-graph memory as a supervised child: one HTTP MCP server for every agent.

Agents in their own processes reach it over streamable HTTP on loopback (Origin and Host checked by
the memory server). A repair made while loading (a corrupt line quarantined, duplicates merged)
becomes a ``memory.repaired`` event of the node.

The server binds its port at once and serves it in the background: importing the MCP SDK takes a
second or more, and neither the agents nor the node's READY wait for it. In a company it begins
once the agents have started (:class:`ServeGate`; the import in a worker thread would otherwise
slow their start, which needs the node's loop) or at the first connection, whichever comes first.
A call an agent makes meanwhile waits in the bound socket's backlog until the server accepts it.
``("serving",)`` says whether it does yet (``/readyz`` asks); a server that stops, or never comes
up, crashes this child, and its supervisor restarts it on the same port.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beamish._exits import ExitReason
from beamish._net import listen, url_host
from beamish._tasks import cancel_and_wait
from beamish.memory import KnowledgeGraph
from beamish.runtime import Actor

#: What the operator can do about a memory port that cannot be bound.
_PORT_FIX = "stop that process, or set another [memory] port in beamish.toml (or none, for a free one)"


class ServeGate:
    """Holds a memory server's import back while the company starts its agents; once opened it
    stays open, so a restarted server serves at once."""

    def __init__(self) -> None:
        self.is_open = False
        self._waiting: list[Callable[[], None]] = []

    def open(self) -> None:
        self.is_open = True
        waiting, self._waiting = self._waiting, []
        for then in waiting:
            then()

    def when_open(self, then: Callable[[], None]) -> None:
        if self.is_open:
            then()
        else:
            self._waiting.append(then)


class MemoryService(Actor):
    """``ChildSpec("memory", MemoryService, kwargs={"file": …, "host": …, "port": …})``; with
    ``gate`` (a :class:`ServeGate`), it serves once the gate opens or a client connects."""

    async def init(
        self,
        file: str,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/mcp",
        gate: ServeGate | None = None,
    ) -> None:
        self.sock: socket.socket = listen(host, port, "memory server", _PORT_FIX)
        self.graph: KnowledgeGraph | None = None
        self.server: Any = None
        self.task: asyncio.Task[None] | None = None
        self.serve_args = (file, host, path)
        if gate is None:
            self._begin()
            return
        me, loop, fd = self.ref, asyncio.get_running_loop(), self.sock.fileno()

        def connected() -> None:  # a connection waiting in the backlog makes the socket readable
            loop.remove_reader(fd)
            me.cast(("serve",))

        loop.add_reader(fd, connected)
        gate.when_open(lambda: me.cast(("serve",)))

    def _begin(self) -> None:
        if self.task is not None:
            return
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.task = asyncio.create_task(self._serve(*self.serve_args), name="beamish-memory-http")
        me = self.ref
        self.task.add_done_callback(lambda _t: me.cast(("server-exited",)))

    async def _serve(self, file: str, host: str, path: str) -> None:
        # The MCP server's first import builds pydantic models for a second or more: done on the
        # loop, it would stall every actor of the node. A worker thread imports it instead.
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
        port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
        )
        self.server = EmbeddedServer(config)
        await self.server.serve(sockets=[self.sock])

    async def handle_cast(self, message: Any) -> None:
        if message == ("serve",):
            self._begin()
        elif message == ("server-exited",) and self.task is not None:
            if not self.task.cancelled() and self.task.exception() is not None:
                self.task.result()  # the reason it could not serve is this child's exit reason
            raise RuntimeError("the memory server stopped serving")

    async def handle_call(self, request: Any) -> Any:
        if request == ("url",):
            host, port = self.sock.getsockname()[:2]
            return f"http://{url_host(host)}:{port}/mcp"
        if request == ("serving",):
            return self.server is not None and bool(self.server.started)
        raise ValueError(f"memory service: unknown request {request!r}")

    #: Seconds the server has to stop politely, then forcibly, before its task is cancelled.
    polite_s = 3.0
    forced_s = 3.0

    async def terminate(self, reason: ExitReason) -> None:
        force = None
        grace_s = 0.0  # still importing or loading: nothing to stop politely
        if self.server is not None:  # politely first: the MCP session manager's lifespan ends cleanly
            self.server.should_exit = True
            force = asyncio.get_running_loop().call_later(
                self.polite_s, setattr, self.server, "force_exit", True
            )
            grace_s = self.polite_s + self.forced_s
        try:
            await cancel_and_wait(self.task, grace_s=grace_s)
        finally:
            if force is not None:
                force.cancel()
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
        if self.graph is not None:
            await self.graph.aclose()
