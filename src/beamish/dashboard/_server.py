"""Serve the dashboard inside the node's event loop (uvicorn, no thread, no signal takeover)."""

from __future__ import annotations

import asyncio
import os

import uvicorn

from beamish._net import check_bind, is_loopback, listen
from beamish._serve import EmbeddedServer
from beamish._tasks import cancel_and_wait
from beamish.company._status import DashboardSource
from beamish.dashboard._app import create_app


class DashboardServer:
    """The dashboard, served on ``host:port`` (port 0 picks a free one; :attr:`url` tells which).

    Bound to loopback unless told otherwise; any other bind requires ``token``.
    """

    def __init__(
        self,
        source: DashboardSource,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        link_secret: str | None = None,
    ) -> None:
        check_bind(host, token)
        self.host, self.port, self.token = host, port, token
        secret = link_secret or os.environ.get("BEAMISH_LINK_SECRET")
        app = create_app(source, token=token, loopback_only=is_loopback(host), link_secret=secret)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        """Start serving; returns the URL once the socket is listening. A port that cannot be bound
        is one line naming it (not uvicorn's ``[Errno 98]`` log)."""
        sock = listen(self.host, self.port, "dashboard", "stop that process, or choose another port for it")
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="beamish-dashboard")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the bind error
                raise RuntimeError("dashboard server stopped during start")
            await asyncio.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.url

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # open SSE streams would otherwise hold the shutdown
        await cancel_and_wait(self._task, grace_s=5)
        self._task = None

    async def __aenter__(self) -> DashboardServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
