"""The local control channel: how ``beamish status|pause|resume|events`` reach a running node.

A unix socket next to the store (mode 0600: only the owner's commands reach the node), speaking
newline-delimited JSON: one request ``{"op": …}`` per connection, then one reply
``{"ok": true, "result": …}`` or ``{"ok": false, "error": "…"}``; ``events`` replies with one
``{"event": …}`` line per event until the client hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from beamish._events import Event
from beamish._exceptions import BeamishError
from beamish._redact import redact
from beamish.company._status import DashboardSource, UnknownAgent

_MAX_REQUEST = 64 * 1024
#: Control ops on one agent, and the target's method for each.
_AGENT_OPS = {"stop": "stop_agent", "start": "start_agent", "restart": "restart_agent"}


class ControlTarget(DashboardSource, Protocol):
    """What the control channel drives: the dashboard's source, plus pause."""

    async def pause(self, agent: str) -> None:
        """Pause ``agent`` (its state kept; ``resume`` continues it)."""
        ...


def control_path(store_url: str, base_dir: Path) -> Path:
    """The socket for a store: ``<db>.sock`` beside a SQLite file; for PostgreSQL, in ``base_dir``.

    Unix socket paths are limited to ~107 bytes; a longer one moves to the temp directory under a
    name derived from the store, so client and node still agree on it.
    """
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///") + ".sock")
    else:
        digest = hashlib.sha256(store_url.encode()).hexdigest()[:12]
        path = base_dir / f".beamish-{digest}.sock"
    if len(os.fsencode(path)) > 100:
        digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"beamish-{os.getuid()}-{digest}.sock"
    return path


class ControlServer:
    """Serves a :class:`ControlTarget` on a unix socket (0600) until :meth:`stop`."""

    def __init__(self, target: ControlTarget, path: Path) -> None:
        self.target = target
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            if await _answers(self.path):
                raise RuntimeError(f"a node is already serving {self.path}")
            self.path.unlink()  # a stale socket of a node that died
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await reader.readline()
            except ValueError as exc:  # the stream's limit: no newline within _MAX_REQUEST bytes
                raise ValueError(f"request too large (over {_MAX_REQUEST} bytes without a newline)") from exc
            if len(line) > _MAX_REQUEST:
                raise ValueError("request too large")
            try:
                request = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"the request is not JSON ({exc})") from exc
            if not isinstance(request, dict):
                raise ValueError(f"a request is a JSON object, not a JSON {type(request).__name__}")
            if request.get("op") == "events":
                await self._stream_events(request, reader, writer)
                return
            result = await self._handle(request)
            reply: dict[str, Any] = {"ok": True, "result": result}
        except UnknownAgent as exc:
            reply = {"ok": False, "error": f"no agent named {exc.args[0]!r}"}
        except BeamishError as exc:  # says what is wrong in the project's words: no class name needed
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(redact(reply), default=str).encode() + b"\n")
            await writer.drain()
            writer.close()

    async def _handle(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "ping":
            return "pong"
        if op == "tree":
            return (await self.target.tree()).to_json()
        if op == "submit":
            submit = getattr(self.target, "submit", None)
            if submit is None:
                raise ValueError("this node does not take runs")
            run_id = request.get("run_id")
            extra = {"deadline": request["deadline"]} if request.get("deadline") is not None else {}
            return {
                "run_id": await submit(str(request.get("agent", "")), request.get("task"), run_id, **extra)
            }
        if op == "reload":
            reload = getattr(self.target, "reload", None)
            if reload is None:
                raise ValueError("this node cannot reload its config")
            author, reason = str(request.get("author") or "person"), str(request.get("reason") or "reload")
            return await reload(request.get("config"), author=author, reason=reason)
        if op in ("pause", "resume"):
            agent = str(request.get("agent", ""))
            await (self.target.pause(agent) if op == "pause" else self.target.resume(agent))
            return {op + "d": agent}
        if op in _AGENT_OPS:
            act = getattr(self.target, _AGENT_OPS[op], None)
            if act is None:
                raise ValueError(f"this node cannot {op} agents")
            agent = str(request.get("agent", ""))
            await act(agent)
            return {op: agent}
        raise ValueError(f"unknown op {op!r}")

    async def _stream_events(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        replay = int(request.get("replay", 50))
        gone = asyncio.ensure_future(reader.read())  # EOF from the client means it hung up
        events = self.target.events(replay=replay)
        try:
            while True:
                nxt = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                event: Event = nxt.result()
                writer.write(json.dumps({"event": redact(event.to_json())}, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, StopAsyncIteration):
            pass
        finally:
            gone.cancel()
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
            writer.close()


async def _answers(path: Path) -> bool:
    try:
        await control_request(path, {"op": "ping"}, timeout=1.0)
    except (OSError, TimeoutError, ControlUnavailable):
        return False
    return True


class ControlUnavailable(Exception):
    """No node answers on the control socket (none is running): read the store instead."""


async def control_request(path: Path, request: dict[str, Any], timeout: float = 5.0) -> Any:
    """Send one request to the node at ``path``; its result, or raise its error as RuntimeError."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlUnavailable(str(path)) from exc
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ControlUnavailable(f"{path}: the node closed the connection")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "unknown error"))
    return reply.get("result")


async def control_events(path: Path, replay: int = 50) -> AsyncIterator[Event]:
    """Live events from the node at ``path`` (the recent ``replay`` first), until the caller stops."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 22)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlUnavailable(str(path)) from exc
    try:
        writer.write(json.dumps({"op": "events", "replay": replay}).encode() + b"\n")
        await writer.drain()
        while line := await reader.readline():
            data = json.loads(line)
            if "event" in data:
                yield Event.from_json(data["event"])
    finally:
        writer.close()
