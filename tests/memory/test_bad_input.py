"""Malformed JSON-RPC gets what the reference gives, and the server keeps serving.

Each server is driven over raw stdio lines. A message the reference does not answer at all is
followed by a ping: the next line on stdout must be the ping's answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import beamish_command, reference_command

pytestmark = pytest.mark.timeout(60)

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}

MALFORMED = [
    "{not json",
    "[]",
    '"just a string"',
    '{"jsonrpc":"2.0","id":100}',
    '{"jsonrpc":"1.0","id":101,"method":"ping"}',
    '{"jsonrpc":"2.0","method":"notifications/whatever"}',
    '{"jsonrpc":"2.0","id":102,"method":"nosuch/method"}',
    '{"jsonrpc":"2.0","id":103,"method":"tools/call","params":{"name":5}}',
    '{"jsonrpc":"2.0","id":104,"method":"tools/call","params":{}}',
    '{"jsonrpc":"2.0","id":105,"method":"tools/call","params":{"name":"read_graph","arguments":"str"}}',
    '{"jsonrpc":"2.0","id":106,"method":"tools/call","params":{"name":"read_graph","arguments":[1]}}',
    '{"jsonrpc":"2.0","id":99,"method":"tools/call","params":"bad"}',
    '{"jsonrpc":"2.0","id":107,"method":"resources/read","params":{"uri":"memory://other"}}',
]


class RawServer:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 1000

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        assert line, "the server closed stdout"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def answer_to(self, line: str) -> dict[str, Any] | None:
        """What the server says to ``line`` (None: nothing before the following ping's answer)."""
        await self.send(line)
        self.next_id += 1
        ping_id = self.next_id
        await self.send(json.dumps({"jsonrpc": "2.0", "id": ping_id, "method": "ping"}))
        first = await self.receive()
        if first.get("id") == ping_id:
            return None
        pong = await self.receive()
        assert pong.get("id") == ping_id, "the server stopped serving"
        return first


async def start(command: list[str], memory_file: Path) -> RawServer:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "MEMORY_FILE_PATH": str(memory_file)},
    )
    server = RawServer(process)
    await server.send(json.dumps(INIT))
    assert (await server.receive())["id"] == 0
    await server.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    return server


def _essence(answer: dict[str, Any] | None) -> Any:
    if answer is None:
        return None
    if "error" in answer:
        return ("error", answer.get("id"), answer["error"]["code"], answer["error"]["message"])
    return ("result", answer.get("id"), answer["result"])


async def test_malformed_json_rpc_gets_the_reference_answer_and_the_server_keeps_serving(
    reference_js: Path, tmp_path: Path
) -> None:
    servers = {
        "reference": await start(reference_command(reference_js), tmp_path / "r.jsonl"),
        "beamish": await start(beamish_command(), tmp_path / "b.jsonl"),
    }
    try:
        for line in MALFORMED:
            answers = {name: _essence(await s.answer_to(line)) for name, s in servers.items()}
            assert answers["beamish"] == answers["reference"], line
        create = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {
                "name": "create_entities",
                "arguments": {"entities": [{"name": "after", "entityType": "t", "observations": []}]},
            },
        }
        for s in servers.values():
            await s.send(json.dumps(create))
            answer = await s.receive()
            assert (
                answer is not None and answer["result"]["structuredContent"]["entities"][0]["name"] == "after"
            )
    finally:
        for s in servers.values():
            if s.process.stdin is not None:
                s.process.stdin.close()
            await asyncio.wait_for(s.process.wait(), 10)
