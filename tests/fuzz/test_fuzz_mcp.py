"""Fuzzing the memory MCP server's JSON-RPC input, over streamable HTTP and over stdio.

Malformed frames, wrong types for every tool's arguments, huge and deeply nested documents:
the server answers each with a JSON-RPC error (or a tool error) saying what is wrong, never a
500 or a crash, keeps serving the same session afterwards, and the file stays loadable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from beamish.memory import KnowledgeGraph, http_app

pytestmark = pytest.mark.timeout(90)

TOOLS = [
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
]
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1"},
    },
}


class Session:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers, self.next_id = client, headers, 1

    def post(self, body: bytes) -> Any:
        return self.client.post("/mcp", headers=self.headers, content=body)

    def rpc(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        response = self.post(json.dumps(message).encode())
        assert response.status_code == 200, response.text[:300]
        return _message(response.text)


def _message(text: str) -> dict[str, Any]:
    """The JSON-RPC message of a response (plain JSON or one SSE ``data:`` line)."""
    for line in text.splitlines():
        if line.startswith("data: "):
            return json.loads(line[6:])  # type: ignore[no-any-return]
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    path = tmp_path_factory.mktemp("mcp") / "memory.jsonl"
    graph = KnowledgeGraph(path, report_repairs=False)
    with TestClient(http_app(graph), base_url="http://127.0.0.1:8000") as client:
        response = client.post("/mcp", headers=ACCEPT, json=INIT)
        assert response.status_code == 200
        headers = {
            **ACCEPT,
            "mcp-session-id": response.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield Session(client, headers)
        # the session still works and the file loads
        assert "entities" in json.loads(
            Session(client, headers).rpc("tools/call", {"name": "read_graph", "arguments": {}})["result"][
                "content"
            ][0]["text"]
        )


def still_serves(session: Session) -> None:
    reply = session.rpc("tools/list", {})
    assert len(reply["result"]["tools"]) == len(TOOLS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda x: st.lists(x, max_size=4) | st.dictionaries(st.text(max_size=10), x, max_size=4),
    max_leaves=25,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tool=st.sampled_from(TOOLS), arguments=json_values)
def test_any_arguments_to_any_tool_get_a_result_or_an_error_naming_the_problem(
    session: Session, tool: str, arguments: Any
) -> None:
    reply = session.rpc("tools/call", {"name": tool, "arguments": arguments})
    if "error" in reply:
        assert reply["error"]["message"]
    else:
        result = reply["result"]
        if result.get("isError"):
            text = result["content"][0]["text"]
            assert text and ("Invalid" in text or "not found" in text or "error" in text.lower()), text


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    frame=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": json_values},
            optional={"id": json_values, "params": json_values},
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_malformed_frames_are_answered_without_a_server_error(session: Session, frame: bytes) -> None:
    response = session.post(frame)
    assert response.status_code < 500, response.text[:300]
    if response.status_code == 400:
        assert "error" in _message(response.text)
    still_serves(session)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"[" * 200_000 + b"]" * 200_000, id="nested-200k"),
        pytest.param(b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":' * 5_000, id="nested-objects"),
        pytest.param(
            json.dumps({"jsonrpc": "2.0", "id": 9, "method": "x" * 2_000_000}).encode(), id="huge-method"
        ),
    ],
)
def test_huge_and_deeply_nested_frames_are_refused(session: Session, frame: bytes) -> None:
    response = session.post(frame)
    assert 400 <= response.status_code < 500 or "error" in _message(response.text)
    still_serves(session)


def test_a_huge_observation_is_stored_and_read_back(session: Session) -> None:
    big = "y" * 1_000_000
    session.rpc(
        "tools/call",
        {
            "name": "create_entities",
            "arguments": {"entities": [{"name": "big", "entityType": "t", "observations": [big]}]},
        },
    )
    reply = session.rpc("tools/call", {"name": "open_nodes", "arguments": {"names": ["big"]}})
    assert big in reply["result"]["content"][0]["text"]


def test_the_stdio_server_answers_after_garbage_lines(tmp_path: Path) -> None:
    frames = [
        b"not json",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"jsonrpc":"2.0","id":"x","method":7}',
        b"\xff\xfe\x00",
        json.dumps(INIT).encode(),
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"open_nodes","arguments":{"names":7}}}',
        b'{"jsonrpc":"2.0","id":6,"method":"tools/list"}',
    ]
    env = {**os.environ, "MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}
    server = subprocess.Popen(
        [sys.executable, "-m", "beamish.memory"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert server.stdin is not None and server.stdout is not None
    replies: dict[Any, Any] = {}
    try:
        server.stdin.write(b"\n".join(frames) + b"\n")
        server.stdin.flush()
        while 6 not in replies:  # bounded by the test's timeout; EOF means the server died
            line = server.stdout.readline()
            assert line, "the stdio server exited"
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and "id" in message:
                replies[message["id"]] = message
    finally:
        server.stdin.close()
        server.wait(30)
    assert replies[0]["result"]["serverInfo"]["name"] == "beamish-memory"
    assert "names" in json.dumps(replies[5])  # the wrong type is named
    assert len(replies[6]["result"]["tools"]) == len(TOOLS)
