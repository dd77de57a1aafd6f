"""Start an MCP tool server once and list its tools, as ``beamish check`` does before a company runs.

The server is spoken to the way an MCP client would (initialize, initialized, ``tools/list`` over
stdio, newline-delimited JSON-RPC), in its own process, so a server that cannot import, crashes at
start or answers nonsense is found here instead of by each agent at its first call. The memory server
is probed on an empty file in a temporary folder: the company's own file is never opened for writing.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from beamish.memory._schema import TOOL_NAMES

_LAUNCH = "import sys; from beamish.cli import main; sys.argv[0] = 'beamish'; main()"


def probe_memory_server(memory_file: Path, timeout: float = 30.0) -> str | None:
    """None when the memory server starts and lists its nine tools; else what went wrong."""
    del memory_file  # the company's file is checked by the server itself at start (and repaired)
    with tempfile.TemporaryDirectory(prefix="beamish-check-") as folder:
        command = [sys.executable, "-c", _LAUNCH, "memory", "serve", "--file", str(Path(folder) / "m.jsonl")]
        try:
            tools = list_tools(command, timeout)
        except (OSError, ValueError, TimeoutError) as exc:
            return f"the memory MCP server did not list its tools: {exc}"

    missing = set(TOOL_NAMES) - set(tools)
    if missing:
        return f"the memory MCP server lacks the tools {', '.join(sorted(missing))}"
    return None


def list_tools(command: list[str], timeout: float) -> list[str]:
    """Start ``command`` as an MCP stdio server and return the names of the tools it lists."""
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdin is not None and proc.stdout is not None
        _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": _INIT})
        _reply(proc, 1, deadline)
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        result = _reply(proc, 2, deadline)
        return [str(t.get("name")) for t in result.get("tools", []) if isinstance(t, dict)]
    finally:
        _BUFFERS.pop(id(proc), None)
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


_INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "beamish-check", "version": "1"},
}


def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _reply(proc: subprocess.Popen[str], ident: int, deadline: float) -> dict[str, Any]:
    """The result of request ``ident`` (notifications and other replies are skipped). Read from the
    descriptor itself: a line left in a file object's buffer would never wake the selector."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = _BUFFERS.setdefault(id(proc), bytearray())
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            newline = pending.find(b"\n")
            if newline < 0:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError("no answer in time")
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = proc.stderr.read() if proc.stderr is not None else ""
                    last = err.strip().splitlines()[-1] if err.strip() else f"exit code {proc.wait()}"
                    raise ValueError(f"the server exited ({last})")
                pending.extend(chunk)
                continue
            line = bytes(pending[:newline])
            del pending[: newline + 1]
            message = json.loads(line)
            if message.get("id") != ident:
                continue
            if "error" in message:
                raise ValueError(f"the server answered an error: {message['error'].get('message')}")
            result: dict[str, Any] = message.get("result") or {}
            return result


_BUFFERS: dict[int, bytearray] = {}
