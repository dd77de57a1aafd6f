"""MCP servers as tool sources, through the official ``mcp`` client (stdio or streamable HTTP).

An agent lists ``McpServer(...)`` among its tools; each server tool becomes a tool of the agent (its
effect from the tool's annotations: ``readOnlyHint`` → ``read``, ``idempotentHint`` →
``idempotent``, else the server's ``effect``). A stdio server is a child of the agent that uses it:
started with the agent, stopped with it, and restarted — a bounded number of times per window — when
a call finds it dead. The connection is owned by one background task, because the SDK's transports
are anyio task groups that must be entered and left in the same task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from beamish._exceptions import SpecError, ToolError
from beamish._tasks import cancel_and_wait
from beamish.agent._messages import ToolSchema
from beamish.agent._tools import EFFECTS, Effect, ToolContext

_VERSION = 1


@dataclass(frozen=True)
class McpServer:
    """An MCP server an agent takes tools from: ``command`` (stdio) or ``url`` (streamable HTTP).

    ``only`` limits which of its tools the agent gets; ``max_restarts`` within ``restart_window_s``
    bounds how often a dead stdio server is started again before its tools report errors.
    """

    name: str
    command: Sequence[str] | None = None
    url: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    effect: Effect = "idempotent"
    only: Sequence[str] | None = None
    max_restarts: int = 3
    restart_window_s: float = 60.0
    call_timeout_s: float = 120.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"McpServer {self.name!r}"
        if not self.name:
            raise SpecError("McpServer: name is empty")
        if (self.command is None) == (self.url is None):
            raise SpecError(f"{owner}: give exactly one of command=[...] (stdio) or url='http…' (HTTP)")
        if self.command is not None:
            if isinstance(self.command, str) or not self.command:
                raise SpecError(f"{owner}: command must be a non-empty list like ['python', 'server.py']")
            object.__setattr__(self, "command", tuple(self.command))
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise SpecError(f"{owner}: url={self.url!r} must start with http:// or https://")
        if self.effect not in EFFECTS:
            raise SpecError(f"{owner}: effect={self.effect!r} is not one of {list(EFFECTS)}")
        if self.only is not None:
            object.__setattr__(self, "only", tuple(self.only))
        if self.max_restarts < 0:
            raise SpecError(f"{owner}: max_restarts must be >= 0")

    @property
    def source_name(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "v": _VERSION,
            "name": self.name,
            "command": list(self.command) if self.command is not None else None,
            "url": self.url,
            "env": dict(self.env) if self.env is not None else None,
            "cwd": self.cwd,
            "effect": self.effect,
            "only": list(self.only) if self.only is not None else None,
            "max_restarts": self.max_restarts,
            "restart_window_s": self.restart_window_s,
            "call_timeout_s": self.call_timeout_s,
            "headers": dict(self.headers),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> McpServer:
        if data.get("v") != _VERSION:
            raise SpecError(f"McpServer JSON has version {data.get('v')!r}; this beamish reads {_VERSION}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    async def open(self, agent: str) -> McpToolSource:
        source = McpToolSource(self, agent)
        await source.start()
        return source


class McpTool:
    """One tool of an MCP server, as the agent loop calls it."""

    reconcile_fn = None

    def __init__(
        self, source: McpToolSource, name: str, description: str, schema: dict[str, Any], effect: Effect
    ):
        self.source = source
        self.name = name
        self.description = description
        self.parameters = schema
        self.effect: Effect = effect

    def schema(self) -> ToolSchema:
        return ToolSchema(name=self.name, description=self.description, parameters=self.parameters)

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return await self.source.call(self.name, arguments, retry_if_dead=self.effect != "once")


class McpToolSource:
    """A live connection to one MCP server, restarted when it dies (within the server's bound)."""

    def __init__(self, server: McpServer, agent: str) -> None:
        self.server = server
        self.agent = agent
        self.session: Any = None
        self.listed: list[Any] = []
        self.starts = 0
        self._restarts: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._own(ready, self._stop))
        try:
            await ready
        except BaseException as exc:
            await self.close()
            raise ToolError(
                f"MCP server {self.server.name!r} did not start: {type(exc).__name__}: {exc}"
            ) from exc
        self.starts += 1

    async def _own(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.server.command is not None:
                    from mcp.client.stdio import StdioServerParameters, stdio_client

                    command = list(self.server.command)
                    params = StdioServerParameters(
                        command=command[0],
                        args=command[1:],
                        env=dict(self.server.env) if self.server.env is not None else None,
                        cwd=self.server.cwd,
                    )
                    read, write = await stack.enter_async_context(stdio_client(params))
                else:
                    from mcp.client.streamable_http import streamable_http_client

                    assert self.server.url is not None
                    read, write = await stack.enter_async_context(streamable_http_client(self.server.url))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
                self.listed = list(listed.tools)
                self.session = session
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.session = None

    @property
    def alive(self) -> bool:
        return self.session is not None and self._task is not None and not self._task.done()

    def tools(self) -> list[McpTool]:
        """The server's tools this agent may use (``only``), each with its effect."""
        out = []
        for t in self.listed:
            if self.server.only is not None and t.name not in self.server.only:
                continue
            hints = t.annotations
            effect: Effect = self.server.effect
            if hints is not None and hints.read_only_hint:
                effect = "read"
            elif hints is not None and hints.idempotent_hint:
                effect = "idempotent"
            schema = dict(t.input_schema or {"type": "object", "properties": {}})
            out.append(McpTool(self, t.name, t.description or t.name, schema, effect))
        return out

    async def _revive(self) -> None:
        """Start a dead server again, unless it died too often lately."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < self.server.restart_window_s]
        if len(self._restarts) >= self.server.max_restarts:
            raise ToolError(
                f"MCP server {self.server.name!r} died {len(self._restarts)} times within "
                f"{self.server.restart_window_s}s; not restarting it again yet"
            )
        self._restarts.append(now)
        await self.close()
        await self.start()

    async def call(self, name: str, arguments: dict[str, Any], *, retry_if_dead: bool = True) -> str:
        """Call tool ``name``. A server found dead is started again (within the bound); the call is
        repeated on the new server only when ``retry_if_dead`` (not for ``once`` tools)."""
        for attempt in (1, 2):
            async with self._lock:
                if not self.alive:
                    await self._revive()
            try:
                result = await asyncio.wait_for(
                    self.session.call_tool(name, arguments), self.server.call_timeout_s
                )
            except TimeoutError:
                limit = self.server.call_timeout_s
                raise ToolError(f"MCP tool {name!r} gave no answer within {limit}s") from None
            except Exception as exc:
                if _connection_lost(exc):
                    await self._mark_dead()
                    if retry_if_dead and attempt == 1:
                        continue
                raise ToolError(f"MCP tool {name!r} failed: {type(exc).__name__}: {exc}") from exc
            return _render(name, result)
        raise AssertionError("unreachable")

    async def _mark_dead(self) -> None:
        self.session = None
        await self.close()

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        task, self._task = self._task, None
        await cancel_and_wait(task, grace_s=10)  # asked to stop above; cancelled if it has not
        self.session = None


def _connection_lost(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"ClosedResourceError", "BrokenResourceError", "EndOfStream", "BrokenPipeError"}:
        return True
    return "connection closed" in str(exc).lower()


def _render(name: str, result: Any) -> str:
    texts = [c.text for c in (getattr(result, "content", None) or []) if getattr(c, "type", "") == "text"]
    text = "\n".join(texts)
    structured = getattr(result, "structured_content", None)
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False)
    if getattr(result, "is_error", False):
        raise ToolError(text or f"MCP tool {name!r} reported an error")
    return text
