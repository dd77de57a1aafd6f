"""Fixtures for the memory tests: the reference server from npm, and MCP sessions over stdio.

The reference (``@modelcontextprotocol/server-memory``, pinned) is installed once into a cache
folder outside the repository and reused. Without node/npm the tests that need it skip locally and
fail in CI (``service_missing``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from _services import service_missing

REFERENCE_PACKAGE = "@modelcontextprotocol/server-memory"
REFERENCE_VERSION = "2026.8.31"
CACHE = Path(os.environ.get("BEAMISH_TEST_CACHE", Path.home() / ".cache" / "beamish-tests")) / "server-memory"


def reference_entry() -> Path | None:
    """The reference's ``dist/index.js``, installing it into the cache first if needed;
    None when node or npm is absent."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    entry = CACHE / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
    manifest = entry.parent.parent / "package.json"
    if entry.exists() and f'"version": "{REFERENCE_VERSION}"' in manifest.read_text():
        return entry
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(CACHE),
            "--no-audit",
            "--no-fund",
            f"{REFERENCE_PACKAGE}@{REFERENCE_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return entry


@pytest.fixture(scope="session")
def reference_js() -> Path:
    entry = reference_entry()
    if entry is None:
        service_missing("node and npm (for the reference MCP memory server)")
    assert entry is not None
    return entry


def beamish_command() -> list[str]:
    return [sys.executable, "-m", "beamish.memory"]


def reference_command(entry: Path) -> list[str]:
    return ["node", str(entry)]


@asynccontextmanager
async def mcp_session(
    command: list[str],
    memory_file: Path,
    notifications: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Any]:
    """An initialised official-client session to a stdio server writing ``memory_file`` (with
    ``env`` added to its environment); the methods of the notifications it receives are appended
    to ``notifications``."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=command[0], args=command[1:], env={"MEMORY_FILE_PATH": str(memory_file), **(env or {})}
    )
    with open(os.devnull, "w") as errlog:

        async def on_message(message: Any) -> None:
            method = getattr(message, "method", None)
            if notifications is not None and method is not None:
                notifications.append(method)

        async with (
            stdio_client(params, errlog=errlog) as streams,
            ClientSession(*streams, message_handler=on_message) as session,
        ):
            await session.initialize()
            yield session
