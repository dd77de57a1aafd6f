"""A small stdio MCP server for agent tests, built on the official SDK's MCPServer.

``die`` ends the server process, so a test can check that the agent starts it again.
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("test-tools")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two numbers."""
    return f"{a + b} (pid {os.getpid()})"


@server.tool()
def die() -> str:
    """End this server process at once."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
