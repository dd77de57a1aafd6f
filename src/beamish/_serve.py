"""An HTTP app served inside the node's event loop: uvicorn without a thread or a signal takeover.

The dashboard and the company's memory server both run this way; neither owns the process, so
neither may install SIGINT/SIGTERM handlers or end the process when its port is taken.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator

import uvicorn

from beamish._exceptions import BeamishError


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the node (or the CLI) owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn calls sys.exit() when it cannot bind: inside a task, that SystemExit would leave the
        # loop and end the whole process with a traceback. An ordinary error fails this start alone.
        try:
            await super().serve(sockets)
        except SystemExit as exc:
            where = f"{self.config.host}:{self.config.port}"
            raise BeamishError(f"cannot serve on {where}: the address is in use or not available") from exc
