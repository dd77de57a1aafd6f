"""The shared memory's nine tools for agents, over a small MCP client of the company's own.

Every agent of a company talks to the one memory server over MCP's streamable HTTP on loopback.
The general MCP client (``beamish.McpServer``) holds an httpx client, an anyio task group and an SDK
session per agent process — about 12 MB each, measured, most of it built after the fork and so not
shared. For a server that is known, local and plain HTTP, this module speaks the same protocol
(``initialize``, then ``tools/call`` with the ``Mcp-Session-Id`` it was given) with the standard
library, on the tool's worker thread: a few hundred kilobytes. The tools' names and arguments are
the reference memory server's; results and error texts are the server's own, passed through.

The server's URL comes from ``BEAMISH_MEMORY_URL``, which the company sets before any agent
process starts; beyond loopback, so does the bearer token the server requires
(``BEAMISH_MEMORY_TOKEN``, masked in the journal and logs like every secret-named variable).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from typing_extensions import TypedDict

from beamish._exceptions import ToolError
from beamish._redact import redact_leaves
from beamish._version import __version__
from beamish.agent._tools import tool

PROTOCOL_VERSION = "2025-06-18"
URL_ENV = "BEAMISH_MEMORY_URL"
#: The memory server's ``TOKEN_ENV`` (not imported from there: that module is heavy to import).
TOKEN_ENV = "BEAMISH_MEMORY_TOKEN"


class _Client:
    """One MCP session with the memory server; calls are serialised (tools run on worker threads)."""

    def __init__(self, url: str, timeout_s: float = 60.0, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ToolError(
                f"memory: {URL_ENV} must be an http:// URL of the company's memory server, got {url!r}"
            )
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/mcp"
        self.timeout_s = timeout_s
        self.token = token
        self.session: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("POST", self.path, body=json.dumps(message), headers=headers)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            session = response.getheader("mcp-session-id")
        except OSError as exc:
            raise ToolError(f"memory server unreachable at {self.host}:{self.port}: {exc}") from exc
        finally:
            conn.close()
        if session:
            self.session = session
        if response.status == 404 and self.session:
            self.session = None  # the server restarted and forgot us: start a new session
            raise _SessionLost
        if response.status >= 400:
            raise ToolError(f"memory server answered HTTP {response.status}: {body[:300]}")
        if "id" not in message:
            return None  # a notification: nothing comes back
        return _reply(body, message["id"], response.getheader("content-type") or "")

    def _initialize(self) -> None:
        self.session = None
        self._post(
            {
                "jsonrpc": "2.0",
                "id": next(self._ids),
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "beamish-agent", "version": __version__},
                },
            }
        )
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str, arguments: dict[str, Any]) -> str:
        with self._lock:
            for attempt in (1, 2):
                if self.session is None:
                    self._initialize()
                request = {
                    "jsonrpc": "2.0",
                    "id": next(self._ids),
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                }
                try:
                    reply = self._post(request)
                except _SessionLost:
                    if attempt == 2:
                        raise ToolError("memory server keeps forgetting the session") from None
                    continue
                return _render(tool, reply or {})
        raise AssertionError("unreachable")


class _SessionLost(Exception):
    pass


def _reply(body: str, request_id: int, content_type: str) -> dict[str, Any]:
    """The JSON-RPC reply to ``request_id`` from a JSON or an SSE body."""
    candidates: list[str] = []
    if content_type.startswith("text/event-stream"):
        for event in body.split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.splitlines() if line.startswith("data:"))
            if data:
                candidates.append(data)
    else:
        candidates.append(body)
    for text in candidates:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("id") == request_id:
            return message
    raise ToolError(f"memory server sent no reply to request {request_id}")


def _render(tool: str, reply: dict[str, Any]) -> str:
    if "error" in reply:
        error = reply["error"]
        raise ToolError(f"memory tool {tool!r}: {error.get('message', error)}")
    result = reply.get("result") or {}
    texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
    text = "\n".join(texts)
    if not text and result.get("structuredContent") is not None:
        text = json.dumps(result["structuredContent"], ensure_ascii=False)
    if result.get("isError"):
        raise ToolError(text or f"memory tool {tool!r} reported an error")
    return text


_CLIENT: _Client | None = None
_CLIENT_LOCK = threading.Lock()


def _call(tool: str, arguments: dict[str, Any]) -> str:
    global _CLIENT
    with _CLIENT_LOCK:
        url = os.environ.get(URL_ENV)
        if not url:
            raise ToolError(f"memory: no memory server for this agent ({URL_ENV} is not set)")
        token = os.environ.get(TOKEN_ENV) or None
        where = (urlsplit(url).hostname, urlsplit(url).port, token)
        if _CLIENT is None or (_CLIENT.host, _CLIENT.port, _CLIENT.token) != where:
            _CLIENT = _Client(url, token=token)
        client = _CLIENT
    # what agents know is kept in a plain file: no secret goes into it
    return client.call(tool, redact_leaves(arguments))


class Entity(TypedDict):
    name: str
    entityType: str
    observations: list[str]


Relation = TypedDict("Relation", {"from": str, "to": str, "relationType": str})


class ObservationAddition(TypedDict):
    entityName: str
    contents: list[str]


class ObservationDeletion(TypedDict):
    entityName: str
    observations: list[str]


@tool(effect="idempotent")
def create_entities(entities: list[Entity]) -> str:
    """Create multiple new entities in the knowledge graph (an existing name is skipped).

    Args:
        entities: The entities to create, each with a name, a type and observations.
    """
    return _call("create_entities", {"entities": entities})


@tool(effect="idempotent")
def create_relations(relations: list[Relation]) -> str:
    """Create multiple new relations between entities; relations should be in active voice.

    Args:
        relations: Each with 'from', 'to' and 'relationType'.
    """
    return _call("create_relations", {"relations": relations})


@tool(effect="idempotent")
def add_observations(observations: list[ObservationAddition]) -> str:
    """Add new observations to existing entities in the knowledge graph.

    Args:
        observations: Per entity, the observations to add.
    """
    return _call("add_observations", {"observations": observations})


@tool(effect="idempotent")
def delete_entities(entityNames: list[str]) -> str:
    """Delete multiple entities and their relations from the knowledge graph.

    Args:
        entityNames: The names of the entities to delete.
    """
    return _call("delete_entities", {"entityNames": entityNames})


@tool(effect="idempotent")
def delete_observations(deletions: list[ObservationDeletion]) -> str:
    """Delete specific observations from entities in the knowledge graph.

    Args:
        deletions: Per entity, the observations to delete.
    """
    return _call("delete_observations", {"deletions": deletions})


@tool(effect="idempotent")
def delete_relations(relations: list[Relation]) -> str:
    """Delete multiple relations from the knowledge graph.

    Args:
        relations: Each with 'from', 'to' and 'relationType'.
    """
    return _call("delete_relations", {"relations": relations})


@tool
def read_graph() -> str:
    """Read the entire knowledge graph."""
    return _call("read_graph", {})


@tool
def search_nodes(query: str) -> str:
    """Search for nodes whose names, types or observations contain the query.

    Args:
        query: The text to match (case-insensitive).
    """
    return _call("search_nodes", {"query": query})


@tool
def open_nodes(names: list[str]) -> str:
    """Open specific nodes of the knowledge graph by their names.

    Args:
        names: The names of the entities to retrieve.
    """
    return _call("open_nodes", {"names": names})


MEMORY_TOOLS = (
    create_entities,
    create_relations,
    add_observations,
    delete_entities,
    delete_observations,
    delete_relations,
    read_graph,
    search_nodes,
    open_nodes,
)
