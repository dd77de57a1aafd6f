"""The MCP server: the reference's surface on the official SDK's low-level ``Server``.

Tools, resource and error texts are the reference's; what differs is underneath (the
:class:`KnowledgeGraph` store). One server process can serve many clients over streamable HTTP
(loopback by default, Host and Origin checked), or one over stdio.
"""

from __future__ import annotations

import hmac
import os
import re
import sys
import weakref
from importlib.metadata import version as _package_version
from typing import Any

import anyio
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolRequestParams,
    EmptyResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from beamish._exceptions import MemoryGraphError, SpecError
from beamish._net import is_loopback, listen, url_host
from beamish.memory._graph import js_json
from beamish.memory._paging import PAGED_TOOLS, CursorError, page, paged_definitions, take_cursor
from beamish.memory._schema import MUTATING, RESOURCE_URI, tool_definitions
from beamish.memory._store import KnowledgeGraph

#: The server says it is beamish's (a client's logs should not blame the reference server for it);
#: its tools, their schemas and their results stay the reference's, byte for byte.
SERVER_NAME = "beamish-memory"
SERVER_TITLE = "beamish knowledge-graph memory"
SERVER_VERSION = _package_version("beamish")

_RESOURCE = {
    "uri": RESOURCE_URI,
    "name": "knowledge-graph",
    "title": "Knowledge Graph",
    "description": "The full knowledge graph with all entities and relations",
    "mimeType": "application/json",
}
_DELETE_MESSAGES = {
    "delete_entities": "Entities deleted successfully",
    "delete_observations": "Observations deleted successfully",
    "delete_relations": "Relations deleted successfully",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_SUBSCRIPTIONS = "beamish.memory.subscriptions"
#: The bearer token a memory server beyond loopback requires.
TOKEN_ENV = "BEAMISH_MEMORY_TOKEN"


def _text(tool: str, structured: dict[str, Any]) -> str:
    """The text content the reference sends beside the structured result."""
    if tool in _DELETE_MESSAGES:
        return _DELETE_MESSAGES[tool]
    if tool in ("create_entities", "create_relations", "add_observations"):
        (payload,) = structured.values()
        return js_json(payload, indent=2)
    return js_json(structured, indent=2)


def _connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    # The low-level context hands out a per-request session; the per-client connection behind
    # it is where subscriptions live (it has a ``state`` dict for exactly this).
    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def _zod_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "undefined")


async def _reference_param_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Malformed ``tools/call`` params get the reference's answer: JSON-RPC -32603 whose message is
    the zod issue list (the SDK's own answer would be -32602 "Invalid request parameters")."""
    if ctx.method == "tools/call" and isinstance(ctx.params, dict):
        issues = []
        name = ctx.params.get("name", _ABSENT)
        if not isinstance(name, str):
            got = "undefined" if name is _ABSENT else _zod_type(name)
            issues.append(("string", ["params", "name"], got))
        arguments = ctx.params.get("arguments", _ABSENT)
        if arguments is not _ABSENT and not isinstance(arguments, dict):
            issues.append(("record", ["params", "arguments"], _zod_type(arguments)))
        if issues:
            listed = [
                {
                    "expected": expected,
                    "code": "invalid_type",
                    "path": path,
                    "message": f"Invalid input: expected {expected}, received {got}",
                }
                for expected, path, got in issues
            ]
            raise MCPError(code=-32603, message=js_json(listed, indent=2))
    return await call_next(ctx)


def _exact_tool_list(tools: list[dict[str, Any]]) -> ServerMiddleware[Any]:
    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "tools/list" and isinstance(result, dict) and "tools" in result:
            # The SDK's result models re-order schema keys; send the tools exactly as written.
            return {**result, "tools": tools}
        return result

    return middleware


_ABSENT = object()


def build_server(graph: KnowledgeGraph, *, page_size: int | None = None) -> Server[Any]:
    """A low-level MCP ``Server`` answering as the reference memory server does, over ``graph``.

    ``page_size`` turns on paging of ``read_graph``/``search_nodes``/``open_nodes`` (see
    ``_paging``); off by default, which keeps ``tools/list`` identical to the reference's.
    """
    if page_size is not None and page_size < 1:
        raise SpecError(f"page_size must be a positive number of entities, got {page_size!r}")
    tools = tool_definitions() if page_size is None else paged_definitions(tool_definitions())
    h = _Handlers(graph, page_size, tools)
    server = _MemoryServer(
        SERVER_NAME,
        version=SERVER_VERSION,
        title=SERVER_TITLE,
        on_list_tools=h.list_tools,
        on_call_tool=h.call_tool,
        on_list_resources=h.list_resources,
        on_list_resource_templates=h.list_templates,
        on_read_resource=h.read_resource,
        on_subscribe_resource=h.subscribe,
        on_unsubscribe_resource=h.unsubscribe,
    )
    server.middleware.append(_reference_param_errors)
    server.middleware.append(_exact_tool_list(tools))
    return server


class _Handlers:
    """The MCP request handlers of one server over ``graph``; a mutating call notifies every
    connection subscribed to the graph resource."""

    def __init__(self, graph: KnowledgeGraph, page_size: int | None, tools: list[Any]) -> None:
        self.graph, self.page_size, self.tools = graph, page_size, tools
        self.subscribed: weakref.WeakSet[Connection] = weakref.WeakSet()

    async def notify_updated(self) -> None:
        for connection in list(self.subscribed):
            if RESOURCE_URI in connection.state.get(_SUBSCRIPTIONS, ()):
                await connection.send_resource_updated(RESOURCE_URI)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> Any:
        return {"tools": self.tools}

    async def call_tool(self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> Any:
        arguments, offset, paged = (
            params.arguments,
            0,
            self.page_size is not None and params.name in PAGED_TOOLS,
        )
        try:
            if paged:
                arguments, offset = take_cursor(arguments)
            structured = await self.graph.call(params.name, arguments)
            if paged:
                assert self.page_size is not None
                structured = page(structured, offset, self.page_size)
        except (MemoryGraphError, CursorError) as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        if params.name in MUTATING:
            await self.notify_updated()
        return {
            "content": [{"type": "text", "text": _text(params.name, structured)}],
            "structuredContent": structured,
        }

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> Any:
        return {"resources": [dict(_RESOURCE)]}

    async def list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> Any:
        return {"resourceTemplates": []}

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> Any:
        uri = str(params.uri)
        if not _URL.match(uri):
            raise MCPError(code=-32603, message="Invalid URL")
        if uri != RESOURCE_URI:
            raise MCPError(code=-32602, message=f"MCP error -32602: Resource {uri} not found")
        text = js_json(await self.graph.read_graph(), indent=2)
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            connection.state.setdefault(_SUBSCRIPTIONS, set()).add(str(params.uri))
            self.subscribed.add(connection)
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            connection.state.get(_SUBSCRIPTIONS, set()).discard(str(params.uri))
        return EmptyResult()


class _MemoryServer(Server[Any]):
    """Advertises what the reference advertises (``listChanged`` for tools and resources) on every
    transport, including those that build the initialization options themselves (HTTP)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


async def serve_stdio(graph: KnowledgeGraph, *, page_size: int | None = None) -> None:
    """Serve ``graph`` to one MCP client on this process's stdin/stdout until stdin closes."""
    server = build_server(graph, page_size=page_size)
    async with stdio_server() as (read_stream, write_stream):
        print("Knowledge Graph MCP Server running on stdio", file=sys.stderr, flush=True)
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(
    graph: KnowledgeGraph,
    *,
    host: str = "127.0.0.1",
    path: str = "/mcp",
    allowed_origins: list[str] | None = None,
    page_size: int | None = None,
    token: str | None = None,
) -> Any:
    """The streamable HTTP app (Starlette). Host and Origin headers are checked: on loopback the
    loopback origins are allowed; any other host must name its allowed origins. Beyond loopback
    every request must also bear ``token`` (or ``BEAMISH_MEMORY_TOKEN``): without one the app is
    refused, since the graph would be open to the network."""
    token = token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback(host)
    if not loopback and token is None:
        raise SpecError(
            f"memory server: serving on {host!r} (not loopback) needs a token; set {TOKEN_ENV} "
            "and send it as 'Authorization: Bearer <token>'"
        )
    server = build_server(graph, page_size=page_size)
    origins = list(allowed_origins or [])
    names = [url_host(host)]
    if loopback:  # the bound address and every usual name of this machine
        names += [n for n in ("127.0.0.1", "localhost", "[::1]") if n != names[0]]
        origins += [f"http://{name}:*" for name in names]
    hosts = [f"{name}:*" for name in names]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    app = server.streamable_http_app(streamable_http_path=path, host=host, transport_security=security)
    return app if token is None else _BearerToken(app, token)


class _BearerToken:
    """ASGI guard: an HTTP request without ``Authorization: Bearer <token>`` gets a 401 (the
    comparison in constant time, so its timing tells nothing about the token)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope.get("headers", []):
                if name == b"authorization" and value[:7].lower() == b"bearer ":
                    given = value[7:].strip()
            if not hmac.compare_digest(given, self.expected):
                body = b"a valid bearer token is required"
                headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def serve_http(
    graph: KnowledgeGraph,
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/mcp",
    *,
    allowed_origins: list[str] | None = None,
    started: anyio.Event | None = None,
    page_size: int | None = None,
    token: str | None = None,
) -> None:
    """Serve ``graph`` over streamable HTTP until cancelled, so many agents share one process.

    ``started`` is set once the socket listens (a supervisor can wait on it).
    """
    import uvicorn

    app = http_app(
        graph, host=host, path=path, allowed_origins=allowed_origins, page_size=page_size, token=token
    )
    # bound here, not by uvicorn: a taken port is one line naming it, not uvicorn's [Errno 98] log
    sock = listen(host, port, "memory server", "stop that process, or pass another --http HOST:PORT")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()

    if started is None:
        await serve()
        return
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        while not server.started:
            await anyio.sleep(0.01)
        started.set()
